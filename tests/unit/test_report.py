"""`bootlab report`: pages built from a store filled by simulated trials that replay recorded redox-sim logs.

Every kind (trial, matrix with refused cells, comparison, boot, history), the edge cases (a trial with no boots,
one whose every boot failed, one whose every boot was an infra-error, 1,000 boots), Markdown, the compare text
and the command's bad input. The checks read the pages' content against the store, not just that a file exists;
tests/unit/test_report_browser.py opens the same pages in Chromium.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import html
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_support import SAMPLES, make_report_lab, replay_boot_fn

from bootlab.cli.main import main
from bootlab.lab.lab import ArmSpec, Lab
from bootlab.lab.results import to_json
from bootlab.lab.stats import rank_test, wilson
from bootlab.report import pages, plots, render
from bootlab.report.logs import excerpt, log_lines
from bootlab.store.db import Ref, Store
from conftest import make_fake_host


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "svg"):
            self.skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "svg"):
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def text_of(page: str) -> str:
    """The page's readable text (no CSS, no SVG), whitespace collapsed: what a reader sees outside the plots."""
    parser = _Text()
    parser.feed(page)
    return " ".join(" ".join(parser.parts).split())


def section(page: str, anchor: str) -> str:
    """The HTML from ``<h2 id=anchor>`` to the next ``<h2``."""
    start = page.index(f'<h2 id="{anchor}">')
    end = page.find("<h2", start + 1)
    return page[start : end if end >= 0 else len(page)]


def rate(passed: int, n: int) -> str:
    lo, hi = wilson(passed, n)
    return f"{passed}/{n} {passed / n:.0%} [{lo:.0%}-{hi:.0%}]"


class Filled:
    """A store with one of everything; ids are fixed by the order they are made in."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lab: Lab = make_report_lab(root, make_fake_host())
        assert self.lab.store is not None
        self.store: Store = self.lab.store
        lab = self.lab
        self.trial = to_json(lab.trial(ArmSpec("sim", ["cpu=max", "vars.build=dsb-wfi"]), n=20, seed_base=3))  # t1
        self.all_failed = to_json(lab.trial(ArmSpec("sim", ["cpu=max", "smp=4"]), n=6, seed_base=4))  # t2
        self.infra = to_json(lab.trial(ArmSpec("sim", ["vars.broken=qemu-missing"]), n=4, seed_base=5))  # t3
        self.empty_id = self.store.begin_trial("sim", sets=["cpu=max"], params={"n": 10})  # t4: no boot yet
        self.matrix = to_json(
            lab.matrix(
                "sim",
                ["vars.build=dsb-wfi"],
                ["cpu=cortex-a72,max,host", "smp=1,4", "machine.highmem=on,off"],
                n=3,
                seed_base=1,
            )
        )  # m1: cells t5..t12; the 4 host cells are refused by lint
        a = ArmSpec("sim", ["cpu=max", "vars.build=dsb-wfi"], label="dsb-wfi")
        b = ArmSpec("sim", ["cpu=max", "vars.build=isb-barriers", "vars.slow=0.4"], label="isb-barriers")
        self.comparison = to_json(lab.compare(a, b, n=15, seed_base=5))  # c1 (t13, t14)
        # a single boot, as `bootlab boot` stores it: no trial
        profile = lab.resolve(ArmSpec("sim", ["cpu=max", "smp=4"]), 77, 0)
        verdict = asyncio.run(replay_boot_fn()(profile, root / "single.log"))
        self.single = f"b{self.store.record_boot(verdict, profile, lab.host, sets=['cpu=max', 'smp=4'])}"

    def page(self, ref: str) -> pages.Page:
        from bootlab.store.db import parse_ref

        return pages.load(self.store, parse_ref(ref))

    def html(self, page: pages.Page) -> str:
        return render.html(page, plots.figures(page), store=self.store.root)

    def boots(self, trial: str) -> list[dict[str, object]]:
        return [dict(r) for r in self.store.boots(int(trial[1:]))]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    f = Filled(tmp_path_factory.mktemp("report"))
    yield f
    f.store.close()


def test_trial_page_shows_the_stored_numbers(filled: Filled) -> None:
    t = filled.trial
    page = filled.html(filled.page("t1"))
    text = text_of(page)
    assert rate(t["passed"], t["boots"]) in text and "95% Wilson interval" in text
    for outcome, count in t["outcomes"].items():
        assert f"{outcome} {count}" in text
    # plots: rate, outcome strip, stage times, time to ready, failures by title; each inline, with a caption
    assert page.count('<svg class="plot"') == 5 and page.count("<figcaption>") == 5
    assert "Pass rate" in text and "Outcome of each boot" in text and "Time to each stage" in text
    # failures by title, with counts and the first boot of each
    for title in t["titles"]:
        assert html.escape(title["title"], quote=False) in section(page, "failures")
        assert f">{title['count']}<" in section(page, "failures")
    # incidents apart from failures
    assert "redox: Lacks grant in nulld" in text_of(section(page, "incidents"))
    # every boot in the verdict table, with its seed and outcome
    boots = filled.boots("t1")
    table = section(page, "boots")
    assert table.count("<tr") == len(boots) + 1
    for b in boots:
        assert f">b{b['id']}" in table and f">{b['seed']}<" in table
    # the environment: QEMU version, the kernel's sha256, the argv of the first boot
    env = text_of(section(page, "environment"))
    assert "7.2.22" in env and hashlib.sha256(b"not a kernel").hexdigest() in env
    assert "qemu-system-aarch64 -M virt -cpu max" in env
    assert "bootlab trial sim --set cpu=max --set vars.build=dsb-wfi -n 20 --seed-base 3" in env


def test_failed_boots_show_excerpt_registers_and_replay(filled: Filled) -> None:
    page = filled.html(filled.page("t1"))
    failed = [b for b in filled.boots("t1") if b["outcome"] != "pass"]
    details = section(page, "failed-boots")
    assert details.count('<section class="failure"') == len(failed) <= pages.MAX_FAILURE_DETAILS
    for b in failed:
        part = details[details.index(f'id="b{b["id"]}"') :].split("</section>")[0]
        verdict = json.loads(str(b["verdict"]))
        assert f"bootlab boot sim --set cpu=max --set vars.build=dsb-wfi --seed {b['seed']}" in part
        if b["outcome"] == "crash":
            # the highlighted line is the verdict's fatal line, and the registers captured at the crash are shown
            marked = re.search(r"<mark[^>]*><span class=\"ln\">\d+</span>(.*?)</mark>", part)
            assert marked and html.unescape(marked.group(1)).strip() == verdict["fatal_line"].strip()
            assert "ffffa1486a4da26c" in part
        else:  # a hang: no fatal line; the end of the log is the clue
            assert "<mark" not in part and "no fatal line" in part


def test_fatal_line_after_an_incident_with_the_same_text() -> None:
    """Redox prints "Lacks grant" for a daemon (an incident) before printing it for init (the fatal one)."""
    lines = log_lines((SAMPLES / "guest-redox-sim-init-died.log").read_bytes())
    hits = [i for i, line in enumerate(lines) if "Lacks grant" in line]
    assert len(hits) == 2
    first = excerpt(lines, "kernel::context::memory:DEBUG -- Lacks grant")
    second = excerpt(lines, "kernel::context::memory:DEBUG -- Lacks grant", skip=1)
    assert first and second
    assert [x["n"] for x in first["lines"] if x["fatal"]] == [hits[0] + 1]
    assert [x["n"] for x in second["lines"] if x["fatal"]] == [hits[1] + 1]


def test_all_failed_infra_and_empty_trials(filled: Filled) -> None:
    page = filled.html(filled.page("t2"))
    assert rate(0, 6) in text_of(page) and "No failed boots" not in page
    assert section(page, "failed-boots").count('<section class="failure"') == 6
    # every boot an infra-error: nothing counted, the page says why instead of plotting nothing
    infra = text_of(filled.html(filled.page("t3")))
    assert "0 counted boots" in infra and "4 qemu-error/infra-error boot(s) are excluded" in infra
    assert "the host or the profile is the problem" in infra and "cannot start QEMU: qemu-missing" in infra
    # a trial with no boot stored yet (still running): a page, not a traceback
    empty = filled.html(filled.page(f"t{filled.empty_id}"))
    assert "0 counted boots" in text_of(empty) and "This trial has no stored boots" in text_of(empty)
    assert '<svg class="plot"' not in empty and "nothing to plot" in empty


def test_matrix_heat_map_and_refused_cells(filled: Filled) -> None:
    m = filled.matrix
    page = filled.html(filled.page("m1"))
    text = text_of(page)
    svg = page[page.index('<svg class="plot"') : page.index("</svg>")]
    booted = [c for c in m["cells"] if not c["refused"]]
    for c in booted:  # counts and interval written into the cells of the heat map, and in the table
        assert f"{c['passed']}/{c['boots']}" in svg and rate(c["passed"], c["boots"]) in text
    assert svg.count("refused") == 4 and "machine.highmem=on" in svg and "machine.highmem=off" in svg
    refused = [c for c in m["cells"] if c["refused"]]
    assert len(refused) == 4 and "cpu-host-tcg" in text_of(section(page, "refused"))
    marks = Counter(c["mark"] for c in m["cells"])
    assert marks["refused"] == 4 and marks["fail"] >= 2  # cpu=max with smp=4 always crashes
    for mark, name in render.MARK_NAMES.items():
        assert (f"{name} {marks[mark]}" in text) == (mark in marks)
    # each booted cell in detail, with its trial
    for c in booted:
        assert f'id="cell-{c["trial"]}"' in page


def test_comparison_rates_difference_and_rank_test(filled: Filled) -> None:
    c = filled.comparison
    page = filled.html(filled.page("c1"))
    text = text_of(page)
    assert c["sentence"] in text and f"two-sided p = {c['p_value']:.3g}" in text
    lo, hi = c["difference_ci95"]
    assert f"[{100 * lo:+.0f}, {100 * hi:+.0f}] (95% Newcombe interval)" in text
    # the rank test, recomputed here from the stored boots
    login = {}
    for side, trial in (("a", c["a"]["trial"]), ("b", c["b"]["trial"])):
        login[side] = [
            s["t"] for b in filled.boots(trial) for s in json.loads(str(b["verdict"]))["stages"] if s["name"] == "login"
        ]
    test = rank_test(login["a"], login["b"])
    assert test is not None and test[0] < 0.05 and test[1] == 1  # B boots 0.4 s slower at every stage after menu
    timing = section(page, "timing")
    assert f"{test[0]:.3g}" in timing and "B slower" in timing
    # one p format wherever a p is printed (the table, the figure's notes, the sentences): three significant digits
    svg = "".join(re.findall(r"<svg.*?</svg>", page, re.S))
    for row in filled.page("c1").data["timing"]["stages"]:
        assert row["p_value"] is None or f"p = {row['p_value']:.3g}" in svg, row
    assert f"Mann–Whitney p = {test[0]:.3g}" in text and f"p = {c['p_value']:.3g}" in c["sentence"]
    assert "Mann-Whitney" not in page
    assert "isb-barriers reaches login later than dsb-wfi" in text
    assert page.count('<svg class="plot"') == 5
    assert "bootlab compare sim --a cpu=max --a vars.build=dsb-wfi --b cpu=max" in text


def test_boot_page(filled: Filled) -> None:
    crashed = next(b for b in filled.boots("t1") if b["outcome"] == "crash")
    page = filled.html(filled.page(f"b{crashed['id']}"))
    text = text_of(page)
    verdict = json.loads(str(crashed["verdict"]))
    assert verdict["title"] in text and "Timeline" in text and "ffffa1486a4da26c" in text
    raw = gzip.decompress((filled.store.root / str(crashed["log_path"])).read_bytes()).decode()
    whole = section(page, "log")
    assert whole.count('<span class="ln">') == len(raw.rstrip("\n").split("\n"))
    assert whole.count("<mark>") == 1


def test_boot_page_shows_the_decoded_fault(tmp_path: Path) -> None:
    """The fault registers the gdb stub read (and the exception decoded from them) are in both formats."""
    from bootlab.verdict import VcpuRegisters

    lab = make_report_lab(tmp_path, make_fake_host())
    assert lab.store is not None
    profile = lab.resolve(ArmSpec("sim", ["cpu=max", "smp=4"]), 5, 0)
    verdict = asyncio.run(replay_boot_fn()(profile, tmp_path / "fault.log"))
    assert verdict.outcome == "crash"
    fault = "data abort from EL0: translation fault, level 3, write, FAR 0x11000"
    regs = [
        VcpuRegisters(cpu=0, pc="4005d0", esr="92000047", far="11000", spsr="80000000", el=1, exception=fault, raw=""),
        VcpuRegisters(cpu=1, pc="ffffffff81000000", cr2="1379b0d8", cr3="1070000", raw=""),
        VcpuRegisters(cpu=2, pc="10", stub_error="current accelerator doesn't support guest debugging", raw=""),
    ]
    ref = Ref("boot", lab.store.record_boot(verdict.model_copy(update={"registers": regs}), profile, lab.host))
    page = pages.load(lab.store, ref)
    part = text_of(section(render.html(page, plots.figures(page), store=lab.store.root), "registers"))
    assert f"last exception taken: {fault} (the vCPU is at EL1)" in part
    for value in ("80000000", "1379b0d8", "1070000", "no fault registers: current accelerator"):
        assert value in part
    md = render.markdown(page)
    assert f"cpu0: last exception: {fault}; esr=92000047 elr=None spsr=80000000 (cpu at EL1)" in md
    assert "cpu1: cr2=1379b0d8 cr3=1070000" in md and "cpu2: no fault registers: current accelerator" in md


def test_single_boot_page(filled: Filled) -> None:
    page = filled.html(filled.page(filled.single))
    text = text_of(page)
    assert "a single boot" in text and "bootlab boot sim --set cpu=max --set smp=4 --seed 77" in text
    assert "add them" not in text  # its --set values are stored with it
    assert '"smp": 4' in text  # the resolved profile says what it ran with


def test_a_single_boot_replays_with_its_sets_in_show_export_and_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bootlab boot --set ...` stores its --set values: every replay hint of the boot carries them; a single boot
    stored before they were recorded replays without them, and its page says to add them."""
    from test_trial_support import make_project, use_simulated_boots

    import bootlab.lab.boot
    from bootlab.verdict import Verdict

    config = str(make_project(tmp_path))
    use_simulated_boots(monkeypatch, make_fake_host(), tmp_path / "store")
    monkeypatch.setattr(bootlab.lab.boot, "boot", lambda profile, **kw: Verdict(outcome="crash", seed=profile.seed))
    assert main(["boot", "sim", "--config", config, "--set", "cpu=max", "--set", "smp=4", "--seed", "77"]) == 1
    replay = "bootlab boot sim --set cpu=max --set smp=4 --seed 77"
    capsys.readouterr()
    assert main(["show", "b1", "--config", config]) == 0
    assert f"(replay: {replay})" in capsys.readouterr().out
    assert main(["export", "b1", "--config", config, "--format", "junit"]) == 0
    assert f"replay: {replay}" in capsys.readouterr().out
    with Store(tmp_path / "store") as store:
        page = pages.load(store, Ref("boot", 1))
        assert page.data["boot"]["replay"] == replay and replay in render.markdown(page)
        store.db.execute("UPDATE boots SET sets = NULL")  # as a boot stored before bootlab recorded them
        store.db.commit()
        old = render.html(p := pages.load(store, Ref("boot", 1)), plots.figures(p), store=store.root)
        md = render.markdown(p)
    # every replay of such a boot says the --set values are missing, not only the HTML page
    note = "stored before bootlab recorded --set values: add the ones it ran with"
    assert "bootlab boot sim --seed 77" in text_of(old) and note in text_of(old) and note in md
    assert main(["show", "b1", "--config", config]) == 0
    assert note in capsys.readouterr().out
    assert main(["export", "b1", "--config", config, "--format", "junit"]) == 0
    assert note in capsys.readouterr().out


def test_a_rev_trial_replays_that_build_and_shows_its_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Boots of a build bootlab made apart (`trial --rev v0.9`): the trial's replay carries --rev, each boot's
    replay says which build to put in place first (`bootlab boot` boots the user's tree), the environment names
    the revision; a comparison gives each arm its own."""
    from bootlab.source.revision import Revision

    lab = make_report_lab(tmp_path, make_fake_host())
    assert lab.store is not None
    commit = "0123456789ab" + "c" * 28
    v09 = Revision(dir=str(tmp_path), commit=commit, rev="v0.9", checkout=True)
    sets = ["cpu=max", "vars.build=never"]
    lab.trial(ArmSpec("sim", sets, revision=v09), n=4, seed_base=3)  # t1
    page = pages.load(lab.store, Ref("trial", 1))
    arm = page.data["arm"]
    assert (
        arm["replay_trial"]
        == "bootlab trial sim --set cpu=max --set vars.build=never -n 4 --seed-base 3 --rev 0123456789ab"
    )
    put = "# first put the build of 0123456789ab (v0.9) in place: git switch --detach 0123456789ab && bootlab build sim"
    put += " --set cpu=max --set vars.build=never\nbootlab boot sim --set cpu=max --set vars.build=never --seed "
    assert arm["failures"] and all(b["replay"] == f"{put}{b['seed']}" for b in arm["failures"])
    html_page = render.html(page, plots.figures(page), store=lab.store.root)
    assert "Source revision: 0123456789ab (v0.9) in bootlab's build of it" in text_of(section(html_page, "environment"))
    assert "```sh\n# first put the build of 0123456789ab (v0.9) in place" in render.markdown(page)
    # show and the JUnit export carry the same note
    monkeypatch.setenv("BOOTLAB_STORE", str(lab.store.root))
    boot = arm["failures"][0]["boot"]
    assert main(["show", boot]) == 0
    assert "\n    first put the build of 0123456789ab (v0.9) in place: git switch" in capsys.readouterr().out
    assert main(["export", "t1", "--format", "junit"]) == 0
    assert "replay: # first put the build of 0123456789ab (v0.9)" in capsys.readouterr().out
    assert main(["show", "t1"]) == 0  # the trial's own text: its "replay one" line too
    out = capsys.readouterr().out
    assert "  # first put the build of 0123456789ab (v0.9) in place: git switch --detach 0123456789ab" in out
    # a comparison of that build against the user's tree: --a-rev only
    lab.compare(ArmSpec("sim", sets, label="v0.9", revision=v09), ArmSpec("sim", sets, label="here"), n=2, seed_base=1)
    replay = pages.load(lab.store, Ref("comparison", 1)).data["replay"]
    assert replay == (
        "bootlab compare sim --a cpu=max --a vars.build=never --b cpu=max --b vars.build=never --a-rev 0123456789ab "
        "-n 2 --seed-base 1"
    )
    lab.store.close()


def test_history_page(filled: Filled) -> None:
    page = filled.html(pages.load_history(filled.store, "sim"))
    text = text_of(page)
    rows = filled.store.trials("sim")
    assert f"history of sim: {len(rows)} trials" in text
    for row in rows:
        assert f"t{row['id']}" in text_of(section(page, "trials"))
    assert "cpu=max vars.build=dsb-wfi" in text  # a legend entry per variant, in the page's text
    assert page.count('class="swatch"') >= 5


def test_markdown_for_a_job_summary(filled: Filled, tmp_path: Path) -> None:
    t = filled.trial
    md = render.markdown(filled.page("t1"), html_link="bootlab-report-t1.html")
    assert f"**{rate(t['passed'], t['boots'])}**" in md
    assert "| boots | failure title | first boot | its seed |" in md
    assert md.count("\n| ") >= len(t["titles"]) + len(t["stages"])
    assert "[bootlab-report-t1.html](bootlab-report-t1.html)" in md and "<svg" not in md
    cmd = render.markdown(filled.page("c1"))
    assert filled.comparison["sentence"] in cmd and "Mann–Whitney p" in cmd and "Full report" not in cmd
    mx = render.markdown(filled.page("m1"))
    assert mx.count("🚫") == 5 and mx.count("✅") >= 5  # 4 cells + the key; 4 cells + the key


def test_cli_writes_reports_and_links_markdown(
    filled: Filled, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOOTLAB_STORE", str(filled.store.root))
    monkeypatch.chdir(tmp_path)
    assert main(["report", "t1"]) == 0
    out = capsys.readouterr().out
    assert "report: " in out and (tmp_path / "bootlab-report-t1.html").is_file()
    assert main(["report", "t1", "--format", "md"]) == 0  # the HTML is beside it: linked
    md = (tmp_path / "bootlab-report-t1.md").read_text()
    assert "(bootlab-report-t1.html)" in md
    capsys.readouterr()
    assert main(["report", "c1", "--format", "md", "-o", "-"]) == 0  # no HTML of c1 here: no link
    out = capsys.readouterr().out
    assert out.startswith("### bootlab comparison c1") and "Full report" not in out
    assert main(["report", "t1", "m1", "c1", "--history", "sim", "-o", str(tmp_path / "all")]) == 0
    names = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert names == [f"bootlab-report-{x}.html" for x in ("c1", "history-sim", "m1", "t1")]
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda uri: opened.append(uri) or True)
    assert main(["report", "b1", "-o", str(tmp_path / "one.html"), "--open"]) == 0
    assert opened == [(tmp_path / "one.html").resolve().as_uri()]


def test_thousand_boot_trial_stays_small(tmp_path: Path) -> None:
    lab = make_report_lab(tmp_path, make_fake_host())
    t = to_json(lab.trial(ArmSpec("sim", ["cpu=max", "vars.build=dsb-wfi"]), n=1000, seed_base=7, jobs=4))
    assert lab.store is not None
    page = render.html(p := pages.load(lab.store, Ref("trial", 1)), plots.figures(p), store=lab.store.root)
    size = len(page.encode())
    assert 150_000 < size < 600_000, size  # every boot listed, 24 in detail, five plots: well under a megabyte
    assert section(page, "boots").count("<tr") == 1001
    failed = 1000 - t["passed"]
    assert f"{pages.MAX_FAILURE_DETAILS} of {failed} failed boots are shown" in text_of(page)
    # each title gets its share of the details: the rarest title is shown too
    titles = {x["title"] for x in t["titles"]}
    shown = section(page, "failed-boots")
    assert all(html.escape(title, quote=False) in shown for title in titles)
    svgs = re.findall(r'<svg class="plot".*?</svg>', page, re.S)
    assert len(svgs) == 5 and all(len(s) < 120_000 for s in svgs)


def test_compare_prints_stage_medians_and_rank_test(
    filled: Filled, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOOTLAB_STORE", str(filled.store.root))
    assert main(["compare", "--trials", "t13", "t14"]) == 0
    out = capsys.readouterr().out
    assert "stage times, median A vs B (n), Mann–Whitney two-sided p:" in out
    login = next(line for line in out.splitlines() if line.strip().startswith("login"))
    assert re.search(r"login\s+\d+\.\d\d s \(\d+\) vs\s+\d+\.\d\d s \(\d+\)\s+p = \S+\s+B slower", login)
    assert "reaches login later than" in out
    assert main(["compare", "--trials", "t13", "t14", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["stage"]: r for r in data["timing"]["stages"]}
    assert rows["login"]["b_p50"] > rows["login"]["a_p50"] and rows["login"]["p_value"] < 0.05
    assert rows["bootloader"]["p_value"] > 0.01  # the slow-down is after the bootloader only


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "t99"], "no trial t99 in the store"),
        (["report", "zz"], "not a store id"),
        (["report"], "report needs what to report"),
        (["report", "t1", "--format", "pdf"], "unknown format; use html or md"),
        (["report", "t1", "--format", "md", "--open"], "--open opens an HTML file"),
        (["report", "t1", "m1", "-o", "-"], "-o - writes one HTML page"),
        (["report", "--history", "nope"], "no trials of nope in the store"),
        (["report", "t1", "-o", "FILE/report.html"], "cannot write the report to"),
        (["report", "t1", "m1", "-o", "FILE"], "with several IDs, -o names a directory"),
    ],
)
def test_report_bad_input(
    filled: Filled,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.setenv("BOOTLAB_STORE", str(filled.store.root))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("a file where a directory should be")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("bootlab-report-*")) and not list(tmp_path.glob(".*.tmp"))


def test_report_of_an_empty_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bootlab.store.db import open_store

    monkeypatch.setenv("BOOTLAB_STORE", str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path)
    open_store(root=tmp_path / "store").close()
    assert main(["report", "t1"]) == 2
    err = capsys.readouterr().err
    assert "is empty: nothing to report" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "t1"],
        ["show", "t1"],
        ["history"],
        ["export", "t1"],
        ["note", "t1", "x"],
        ["bisect", "--resume", "s1"],
    ],
)
def test_commands_that_read_the_store_do_not_create_a_missing_one(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """BOOTLAB_STORE with a typo: one line naming the path, exit 2, and nothing created there."""
    monkeypatch.setenv("BOOTLAB_STORE", str(tmp_path / "stroe"))
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"no store at {tmp_path / 'stroe'}" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "stroe").exists()


def test_report_without_the_extra_says_how_to_install_it(
    filled: Filled, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOOTLAB_STORE", str(filled.store.root))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert main(["report", "t1", "-o", "-"]) == 2
    assert "pip install 'bootlab[report]'" in capsys.readouterr().err


def test_other_commands_do_not_import_the_report_libraries() -> None:
    """Start-up must not grow: matplotlib and Jinja2 are imported by `bootlab report` only."""
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bootlab", "profiles"], capture_output=True, text=True, check=True
    )
    imported = {line.split("|")[-1].strip() for line in res.stderr.splitlines() if "|" in line}
    assert "bootlab.cli.main" in imported and "bootlab.profile.loader" in imported
    heavy = ("matplotlib", "jinja2", "bootlab.report.plots", "bootlab.report.render", "bootlab.report.pages")
    assert not [m for m in imported if m.startswith(heavy)]


def test_one_percent_format_for_text_pages_and_figures() -> None:
    """pct, rate_text and difference_text are what the terminal, the templates (the pct and rate filters) and the
    figures print: a rate always with its counts and interval, a difference signed."""
    from bootlab.lab.summary import Tally
    from bootlab.report.text import difference_text, pct, rate_text

    assert (pct(None), pct(0.6), pct(0.004), pct(0.05, signed=True), pct(-0.2, signed=True)) == (
        "-", "60%", "0%", "+5%", "-20%",
    )  # fmt: skip
    six = Tally(6, 4).to_json()
    assert rate_text(six) == "6/10 60% [31%-83%]" and rate_text(six, counts=False) == "60% [31%-83%]"
    assert rate_text(Tally().to_json()) == "0 counted boots" and rate_text(Tally().to_json(), counts=False) == "-"
    assert difference_text(0.2, (-0.05, 0.42)) == "+20% [-5%, +42%]"
    env = render._env()
    assert env.from_string("{{ x | pct }} {{ r | rate }}").render(x=0.25, r=six) == "25% 6/10 60% [31%-83%]"


def test_a_verdict_reads_the_same_in_every_command() -> None:
    """verdict_lines is the body of a verdict under boot's, show's, classify's and vm launch's headlines."""
    from bootlab.report.text import verdict_lines
    from bootlab.verdict import CheckResult, Death, Incident, VcpuRegisters, Verdict

    v = Verdict(
        outcome="crash",
        title="linux: WARNING in foo",
        fatal_line="WARNING at foo",
        fatal_t=3.5,
        death=Death(title="linux: kernel panic", line="Kernel panic", t=None),
        incidents=[Incident(kind="daemon", title="pcid died", process="pcid", line="x", t=1.0)],
        registers=[VcpuRegisters(cpu=0, pc="ffff0010", sp="1000", lr="ffff0008", raw="PC=...")],
        checks=[CheckResult(name="net", command="ping -c1 gw", status="fail", exit_code=1, output="no route\n")],
    )
    data = v.model_dump(mode="json")
    assert verdict_lines(data) == [
        "  title: linux: WARNING in foo",
        "  fatal line (t=3.50s): WARNING at foo",
        "  died of: linux: kernel panic",
        "  incident [daemon] pcid died",
        "  cpu0: pc=ffff0010 sp=1000 lr=ffff0008",
        "  check net: FAIL: ping -c1 gw",
        "    | no route",
    ]
    assert verdict_lines(data, title=False)[0].startswith("  fatal line")
    hang = Verdict(outcome="hang", stopped={"rule": "quiet", "flowing": False, "silent_s": 10.0, "last_lines": ["a"]})
    assert verdict_lines(hang.model_dump(mode="json")) == [
        "  stopped: no console output for 10.0s (quiet timeout)",
        "  last lines:",
        "    | a",
    ]


def test_a_strict_failure_is_grouped_under_the_summary_title_in_pages_and_figures() -> None:
    """Pages and figures group failed boots by lab.summary.failure_title, as the trial's summary does: a pass with
    incidents in a --strict trial is "incidents (strict)" there too (the page's picker called it "pass after ...")."""
    from bootlab.verdict import Incident, Verdict

    incident = Incident(kind="daemon", title="pcid died", process="pcid", line="x", t=1.0)
    models = [
        Verdict(outcome="pass", stage="login", incidents=[incident]),
        Verdict(outcome="pass", stage="shell", incidents=[incident]),
        *[Verdict(outcome="hang", stage="kernel")] * 3,
    ]
    views = [
        {"idx": i, "title": v.title, "outcome": v.outcome, "stage": v.stage, "counted": True, "passed": False,
         "model": v}
        for i, v in enumerate(models)
    ]  # fmt: skip
    picked = pages._pick_failures(views, cap=3)
    assert [b["idx"] for b in picked] == [0, 2, 3]  # round-robin over two titles, not three
    fig = plots.failure_titles([("", "#000000", views)])
    assert fig is not None and "incidents (strict)" in fig.svg and "hang after kernel" in fig.svg
