"""`bootlab report sN` and the history per revision: pages built from stores filled by real bisect runs.

The bisects are bootlab's own (:meth:`Lab.bisect`: a real git repository, real builds in bootlab's checkout, the
real change-point search); only the boots are simulated, replaying recorded redox-sim logs at the rate of the build
baked into each commit's image (report_support.image_rate). The checks read the pages against the bisect's stored
result and boots. tests/unit/test_report_browser.py opens a bisect page in Chromium.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from report_support import make_bisect_lab, replay_boot_fn
from test_report import rate, section, text_of

from bootlab.cli.main import main
from bootlab.errors import UsageError
from bootlab.lab.bisect import BisectSpec, line_posterior
from bootlab.lab.lab import ArmSpec, Lab
from bootlab.lab.results import to_json
from bootlab.lab.stats import wilson
from bootlab.profile.loader import load_project
from bootlab.report import pages, plots, render
from bootlab.store.db import Ref, Store
from conftest import make_fake_host
from gitrepo import SIM_BUILD, git

#: commits 1-6 never crash under -cpu max, 7-12 crash 80% of the time: the regression is commit 7 (index 6)
BUILDS = ["isb-barriers"] * 6 + ["icache-fix"] * 6


@dataclass
class Bisected:
    root: Path
    lab: Lab
    store: Store
    line: list[str]
    found: dict  # type: ignore[type-arg]
    titled: dict  # type: ignore[type-arg]

    def page(self, ref: str) -> pages.Page:
        from bootlab.store.db import parse_ref

        return pages.load(self.store, parse_ref(ref))

    def html(self, ref: str) -> str:
        page = self.page(ref)
        return render.html(page, plots.figures(page), store=self.store.root)


@pytest.fixture(scope="module")
def bisected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bisected]:
    root = tmp_path_factory.mktemp("bisected")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BOOTLAB_CACHE", str(root / "cache"))
        lab, line = make_bisect_lab(root, make_fake_host(), BUILDS)
        found = lab.bisect(BisectSpec("sim", [], good="HEAD~11", bad="main", jobs=2, seed_base=7))  # s1
        # only kernel panics count: other crashes and hangs are ignored; a small budget leaves it undecided
        titled = lab.bisect(
            BisectSpec("sim", [], good="HEAD~11", bad="main", jobs=2, seed_base=3, title="kernel panic", max_boots=8)
        )  # s2
        assert lab.store is not None
        yield Bisected(root, lab, lab.store, line, found, titled)
        lab.store.close()


def test_the_bisect_found_the_regression(bisected: Bisected) -> None:
    """The pages below describe a real answer: the search named commit 7, and the budgeted one did not decide."""
    assert bisected.found["decision"] == "found" and bisected.found["culprit"]["commit"] == bisected.line[6]
    assert bisected.titled["decision"] == "budget" and bisected.titled["culprit"] is None


def test_bisect_page_names_the_culprit_with_its_posterior_and_estimates(bisected: Bisected) -> None:
    r = bisected.found
    c = r["culprit"]
    page = bisected.html("s1")
    text = text_of(page)
    assert (
        f"{c['commit'][:12]} first bad commit, posterior {c['posterior']:.3f} (asked 0.95) after {r['boots']} boots"
        in (text)
    )
    assert "commit 7: icache-fix" in text and c["commit"] in text and "Ada Tester" in text
    assert f"about {100 * r['symptom_rate_old']:.0f}% before the change (p_old)" in text
    assert f"{100 * r['symptom_rate_new']:.0f}% after it (p_new)" in text
    assert f"{r['boots']} used of a budget of 1000" in text
    assert "11 candidate commits from good HEAD~11" in text and "to bad main" in text
    for x in r["runners_up"]:
        assert x["commit"][:12] in section(page, "commits") or x["commit"][:12] in text
    assert "<title>bisect s1: sim, good HEAD~11 .. bad main</title>" in page
    again = "bootlab bisect sim --good 'HEAD~11' --bad main --confidence 0.95 --max-boots 1000 -j 2 --seed-base 7"
    assert again in text


def test_commits_table_has_every_tested_commit_as_counted(bisected: Bisected) -> None:
    r = bisected.found
    table = text_of(section(bisected.html("s1"), "commits"))
    for row in r["commits"]:
        counted = row["symptom"] + row["clean"]
        lo, hi = wilson(row["symptom"], counted)
        cell = f"{row['symptom']}/{counted} {row['symptom'] / counted:.0%} [{lo:.0%}-{hi:.0%}]"
        assert f"{row['index']} {row['commit'][:12]} {row['subject']} {cell}" in table, row
        assert row["trial"] in table
        for t in row["titles"]:
            assert f"{t['count']} × {t['title']}" in table
    assert sum(row["boots"] for row in r["commits"]) == r["boots"]


def test_each_boot_is_the_evidence_the_search_counted(bisected: Bisected) -> None:
    """The page classifies every stored boot itself; its counts per commit are the search's own."""
    for ref, result in (("s1", bisected.found), ("s2", bisected.titled)):
        commits = {c["commit"]: c for c in bisected.page(ref).data["commits"]}
        for row in result["commits"]:
            c = commits[row["commit"]]
            assert c["evidence"] == {k: row[k] for k in ("clean", "symptom", "ignored", "excluded")}
            assert sum(n for _, n in c["evidence_titles"]["symptom"]) == row["symptom"]
            assert len(c["boot_views"]) == row["boots"]


def test_the_posterior_of_every_commit_is_the_searchs(bisected: Bisected) -> None:
    r = bisected.found
    post = line_posterior(r)
    assert len(post) == len(bisected.line) and abs(sum(post) - 1) < 1e-9 and post[0] == 0
    for row in r["commits"]:
        assert post[row["index"]] == pytest.approx(row["posterior"], abs=2e-6)
    assert max(range(len(post)), key=post.__getitem__) == 6
    line = bisected.page("s1").data["line"]
    assert [x["commit"] for x in line] == bisected.line
    assert {x["index"] for x in line if x["tested"]} == {row["index"] for row in r["commits"]}


def test_bisect_figures(bisected: Bisected) -> None:
    figures = plots.figures(bisected.page("s1"))
    assert [f.name for f in figures] == ["posterior", "commits", "rates"]
    r = bisected.found
    posterior, commits, rates = figures
    assert f"{r['culprit']['commit'][:12]} reached {r['posterior']:.3f}" in posterior.caption
    assert r["culprit"]["commit"][:12] in posterior.svg and "asked confidence 95%" in posterior.svg
    assert "posterior (%)" in posterior.svg and "oldest to newest" in posterior.svg  # axes say their units
    # one row per tested commit, labelled with its hash and subject, its symptom count written beside it
    for row in r["commits"]:
        assert f"{row['commit'][:8]}  {row['subject']}" in commits.svg
        assert f"{row['symptom']}/{row['symptom'] + row['clean']}" in commits.svg
    labels = [label for _, _, label in commits.legend]
    titles = {t["title"] for row in r["commits"] for t in row["titles"]}
    assert labels[0] == "clean (passed)" and set(labels[1:]) <= titles | {"other failure titles"}
    assert f"p_old ≈ {100 * r['symptom_rate_old']:.0f}%" in rates.svg and "p_new" in rates.svg
    assert len(re.findall(r"<svg class=\"plot\"", bisected.html("s1"))) == 3


def test_title_filter_shows_ignored_failures_apart(bisected: Bisected) -> None:
    r = bisected.titled
    page = bisected.html("s2")
    text = text_of(page)
    assert "a failure whose title matches <code>kernel panic</code>; other failures are ignored" in page
    ignored = sum(row["ignored"] for row in r["commits"])
    assert ignored > 0  # crashes with other titles and hangs happened, and were not the symptom
    assert text.count("ignored: ") >= 1
    legend = [label for _, _, label in plots.figures(bisected.page("s2"))[1].legend]
    assert "other failures, ignored (not /kernel panic/)" in legend
    assert all("kernel panic" in t for row in bisected.page("s2").data["commits"]
               for t, _ in row["evidence_titles"]["symptom"])  # fmt: skip


def test_an_undecided_bisect_says_so_and_names_the_likeliest(bisected: Bisected) -> None:
    r = bisected.titled
    text = text_of(bisected.html("s2"))
    assert f"No commit reached 0.95: the budget of 8 boots ran out, after {r['boots']} boots." in text
    assert f"most likely {r['best']['commit'][:12]}" in text
    others = [x for x in r["runners_up"] if x["commit"] != r["best"]["commit"]]
    assert others and "runners-up" in text and all(x["commit"][:12] in text for x in others)
    assert r["best"]["commit"][:12] not in text.split("runners-up", 1)[1].split("symptom rate", 1)[0]
    md = render.markdown(bisected.page("s2"))
    assert f"**No commit reached 0.95** (budget) after {r['boots']} boots" in md


def test_an_unbuildable_commit_the_answer_hinges_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The change is at the commit that does not build or the one after it: the page marks the unbuildable commit
    on the posterior plot, lists it as skipped with its build error, and says only its build could tell."""
    monkeypatch.setenv("BOOTLAB_CACHE", str(tmp_path / "cache"))
    script = 'set -e\ngrep -q broken kernel.conf && { echo "error: broken"; exit 1; }\n' + SIM_BUILD
    builds = ["isb-barriers"] * 4 + ["broken"] + ["icache-fix"] * 4
    lab, line = make_bisect_lab(tmp_path, make_fake_host(), builds, script=script)
    r = lab.bisect(BisectSpec("sim", [], good="HEAD~8", bad="HEAD", jobs=2, seed_base=4, max_boots=40))
    assert lab.store is not None and r["culprit"] is None and r["best"]["commit"] in (line[4], line[5])
    page = pages.load(lab.store, Ref("bisect", int(r["bisect"][1:])))
    (hinge,) = page.data["hinges"]
    assert hinge["commit"] == line[4] and hinge["skipped"].startswith("build-error:")
    assert [x["index"] for x in page.data["line"] if x["skipped"]] == [4]
    html = render.html(page, plots.figures(page), store=lab.store.root)
    text = text_of(html)
    assert f"The answer may be {line[4][:12]} commit 5: broken" in text and "only a build of it could tell" in text
    assert "skipped: build-error: build of sim at " + line[4][:12] in text_of(section(html, "commits"))
    assert "1 skipped (not buildable)" in text
    md = render.markdown(page)
    assert (
        f"> The answer may be `{line[4][:12]}`" in md and f"`{line[4][:12]}` **←** | commit 5: broken | skipped:" in md
    )
    lab.store.close()


def test_failed_boots_show_excerpt_and_a_replay_at_their_commit(bisected: Bisected) -> None:
    page = bisected.html("s1")
    failed = section(page, "failed-boots")
    data = bisected.page("s1").data
    assert data["failures"], "the regression crashed some boots"
    for group in data["failures"]:
        commit = group["commit"]["commit"][:12]
        assert f'<span class="mono">{commit}</span>' in failed
        for b in group["boots"]:
            assert f'id="{b["boot"]}"' in failed and f"--seed {b['seed']}" in failed
            assert f"git switch --detach {commit} &amp;&amp; bootlab build sim" in failed
    assert "<mark" in failed  # the fatal line of a crash, highlighted


def test_every_boot_and_the_images_of_each_commit(bisected: Bisected) -> None:
    page = bisected.html("s1")
    every = section(page, "boots")
    for row in bisected.found["commits"]:
        for b in bisected.store.boots(int(row["trial"][1:])):
            assert f"b{b['id']}" in every
    env = text_of(section(page, "environment"))
    images = {}
    for row in bisected.found["commits"]:
        first = bisected.store.boots(int(row["trial"][1:]))[0]
        images[row["commit"]] = json.loads(first["images"])
    kernels = {i["kernel"] for i in images.values()}
    assert len(kernels) == 1 and f"every commit kernel {kernels.pop()}" in env
    for commit, i in images.items():
        assert f"{commit[:12]}" in env and i["initrd"] in env
    # the regression's builds differ from the good ones: two different initrds at least
    assert len({i["initrd"] for i in images.values()}) >= 2


def test_bisect_markdown(bisected: Bisected) -> None:
    r = bisected.found
    md = render.markdown(bisected.page("s1"), html_link="bootlab-report-s1.html")
    c = r["culprit"]
    assert md.startswith("### bootlab bisect s1: sim, good HEAD~11 .. bad main\n")
    assert f"**first bad commit: `{c['commit'][:12]}`** commit 7: icache-fix" in md
    assert f"posterior **{c['posterior']:.3f}** (asked 0.95) · {r['boots']} boots" in md
    for row in r["commits"]:
        assert re.search(rf"^\| {row['index']} \| `{row['commit'][:12]}`", md, re.M), row
    assert f"`{c['commit'][:12]}` **←**" in md
    table = md[md.index("| # | commit |") :].split("\n\n")[0].splitlines()  # one table: no blank line inside
    assert len(table) == 2 + len(r["commits"]) and all(line.startswith("|") for line in table)
    assert "[bootlab-report-s1.html](bootlab-report-s1.html)" in md


def test_cli_reports_a_bisect(bisected: Bisected, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOTLAB_STORE", str(bisected.store.root))
    config = str(bisected.root / "bootlab.toml")
    assert main(["report", "s1", "s2", "-o", str(tmp_path) + "/", "--config", config]) == 0
    assert "first bad commit" in (tmp_path / "bootlab-report-s1.html").read_text()
    assert main(["report", "s1", "--format", "md", "-o", str(tmp_path / "s1.md"), "--config", config]) == 0
    assert "| # | commit |" in (tmp_path / "s1.md").read_text()


def test_a_bisect_without_a_result_is_one_line(
    bisected: Bisected, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(tmp_path / "store")
    bid = store.begin_bisect("sim", {"line": []})  # killed before its first batch finished
    store.begin_trial("sim", sets=[], params={"n": 1})  # a store that is not empty
    with pytest.raises(UsageError, match=f"bisect s{bid} has no result yet.*bootlab bisect --resume s{bid}"):
        pages.load(store, Ref("bisect", bid))
    store.close()
    monkeypatch.setenv("BOOTLAB_STORE", str(tmp_path / "store"))
    assert main(["report", f"s{bid}", "-o", str(tmp_path / "x.html")]) == 2
    assert main(["report", "s99", "-o", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    assert "no bisect s99 in the store" in err and err.count("\n") == 2 and "Traceback" not in err
    assert not (tmp_path / "x.html").exists()


# -- history per revision ------------------------------------------------------------------------------------------


def test_history_pools_boots_per_revision(tmp_path: Path) -> None:
    """Trials of a profile whose images live in a git tree: two commits, one booted by two trials, then a dirty
    tree. Each boot records the revision it booted; the history pools them per revision."""
    from test_trial_support import make_project

    config = make_project(tmp_path)
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / ".gitignore").write_text("store/\n*.log\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "first")
    first = git(tmp_path, "rev-parse", "HEAD")
    host = make_fake_host()

    def trial(sets: list[str], n: int, seed: int) -> dict:  # type: ignore[type-arg]
        # a new store each time, as each `bootlab trial` opens one: it asks git for the revision once per run
        with Store(tmp_path / "store") as store:
            lab = Lab(load_project(config), host, store, boot_fn=replay_boot_fn())
            return to_json(lab.trial(ArmSpec("sim", sets), n=n, seed_base=seed))

    flaky = ["cpu=max", "vars.build=dsb-wfi"]
    t1 = trial(flaky, 6, 1)
    (tmp_path / "vmlinuz").write_bytes(b"a rebuilt kernel")
    git(tmp_path, "commit", "-q", "-am", "second")
    second = git(tmp_path, "rev-parse", "HEAD")
    t2, t3 = trial(flaky, 4, 2), trial(flaky, 5, 3)
    t4 = trial([], 3, 4)  # another variant at the same commit: a group of its own
    (tmp_path / "vmlinuz").write_bytes(b"uncommitted work")
    t5 = trial(flaky, 2, 5)

    with Store(tmp_path / "store") as store:
        page = pages.load_history(store, "sim")
        figures = plots.figures(page)
        html = render.html(page, figures, store=store.root)
        md = render.markdown(page)
    revs = page.data["revisions"]
    key = [(r["revision"]["commit"], r["revision"]["dirty"], r["variant"]) for r in revs]
    flaky_v = " ".join(flaky)
    assert key == [(first, False, flaky_v), (second, False, flaky_v), (second, False, ""), (second, True, flaky_v)]

    def pooled(*ts: dict) -> tuple[int, int]:  # type: ignore[type-arg]
        return sum(t["passed"] for t in ts), sum(t["boots"] for t in ts)

    assert [(r["passed"], r["boots"]) for r in revs] == [pooled(t1), pooled(t2, t3), pooled(t4), pooled(t5)]
    assert revs[1]["trials"] == ["t2", "t3"] and revs[3]["label"] == f"{second[:12]}+dirty (main)"
    assert page.data["unrecorded"] == 0
    assert [f.name for f in figures] == ["history", "revisions"]
    assert f"{second[:8]}+dirty" in figures[1].svg and "first booted" in figures[1].svg
    table = text_of(section(html, "revisions"))
    for r in revs:
        assert f"{r['label']} {' '.join(r['sets'])} {rate(r['passed'], r['boots'])}".replace("  ", " ") in table
    trials = text_of(section(html, "trials"))
    assert re.search(rf"t5 [\d-]+ [\d:]+ cpu=max vars.build=dsb-wfi {second[:12]}\+dirty \(main\)", trials)
    assert re.search(rf"t1 [\d-]+ [\d:]+ cpu=max vars.build=dsb-wfi {first[:12]} \(main\)", trials)
    assert f"| `{second[:12]}+dirty (main)` |" in md


def test_history_without_revisions_has_no_revision_plot(tmp_path: Path) -> None:
    """Boots outside git record no revision: the page says how many, and draws the per-trial plot only."""
    from report_support import make_report_lab

    lab = make_report_lab(tmp_path, make_fake_host())
    lab.trial(ArmSpec("sim", ["cpu=max", "vars.build=dsb-wfi"]), n=4, seed_base=1)
    assert lab.store is not None
    page = pages.load_history(lab.store, "sim")
    assert page.data["revisions"] == [] and page.data["unrecorded"] == 4
    assert [f.name for f in plots.figures(page)] == ["history"]
    text = text_of(render.html(page, plots.figures(page), store=lab.store.root))
    assert "revisions none recorded: their images are outside a git tree" in text
    lab.store.close()
