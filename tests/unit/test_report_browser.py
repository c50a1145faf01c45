"""Reports opened in a real browser: Debian's headless Chromium, driven by Playwright, networking off.

Each kind of report is written to disk and opened from file://. The test reads what the browser laid out, not the
HTML text: every plot's SVG has a real size on the page, the key numbers are in the page's visible text, nothing
sticks out sideways, the browser logged no error (a Content-Security-Policy violation is one) and requested
nothing but the file itself. A full-page screenshot of each is kept (in $BOOTLAB_SCREENSHOTS when set) for a
person to look at.

Playwright is a dev dependency that drives /usr/bin/chromium (installed by `make test`); it never downloads a
browser of its own. Without Chromium the test is skipped, except under `make test`, where a missing browser fails
it (tests/prereq.py).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from report_support import make_bisect_lab, make_report_lab

from bootlab.lab.bisect import BisectSpec
from bootlab.lab.lab import ArmSpec, Lab
from bootlab.lab.results import to_json
from bootlab.lab.stats import wilson
from bootlab.report import pages, plots, render
from bootlab.store.db import Ref
from conftest import make_fake_host
from prereq import need

if TYPE_CHECKING:
    from bootlab.profile.model import Profile

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves: a stray fetch could not leave the machine
]


def _browser_or_skip() -> None:
    need(Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing; `make test` installs it (scripts/setup-system.sh --test)")


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, list[str]]]]:
    """One report of each kind on disk, with the numbers each must show."""
    _browser_or_skip()
    root = tmp_path_factory.mktemp("browser")
    lab = make_report_lab(root, make_fake_host())
    store = lab.store
    assert store is not None
    t = to_json(lab.trial(ArmSpec("sim", ["cpu=max", "vars.build=dsb-wfi"]), n=30, seed_base=3))
    m = to_json(lab.matrix("sim", [], ["cpu=cortex-a72,max,host", "smp=1,4"], n=3, seed_base=1))
    a = ArmSpec("sim", ["cpu=max", "vars.build=dsb-wfi"], label="dsb-wfi")
    b = ArmSpec("sim", ["cpu=max", "vars.build=isb-barriers", "vars.slow=0.3"], label="isb-barriers")
    c = to_json(lab.compare(a, b, n=12, seed_base=5))
    crashed = next(r for r in store.boots(1) if r["outcome"] == "crash")

    def numbers(r: dict[str, Any]) -> str:
        lo, hi = wilson(r["passed"], r["boots"])
        return f"{r['passed']}/{r['boots']} {r['passed'] / r['boots']:.0%} [{lo:.0%}-{hi:.0%}]"

    cell = next(x for x in m["cells"] if x.get("boots"))
    wanted = {
        "trial": (Ref("trial", 1), [numbers(t), t["titles"][0]["title"], "7.2.22"]),
        "matrix": (Ref("matrix", 1), [numbers(cell), "refused by lint", "cpu-host-tcg"]),
        "comparison": (Ref("comparison", 1), [c["sentence"], numbers(c["a"]), numbers(c["b"]), "B slower"]),
        "boot": (Ref("boot", int(crashed["id"])), [str(crashed["title"]), str(crashed["seed"])]),
    }
    out: dict[str, tuple[Path, list[str]]] = {}
    for kind, (ref, expect) in wanted.items():
        page = pages.load(store, ref)
        path = root / f"{page.default_name}.html"
        path.write_text(render.html(page, plots.figures(page), store=store.root), encoding="utf-8")
        out[kind] = (path, expect)
    checked = checks_trial(lab)
    page = pages.load(store, Ref("trial", int(checked["trial"][1:])))
    path = root / f"{page.default_name}.html"
    path.write_text(render.html(page, plots.figures(page), store=store.root), encoding="utf-8")
    out["checks"] = (path, [numbers(checked), "check flaky failed (exit 3)", "output of flaky", "LONG-OUTPUT-END"])
    history = pages.load_history(store, "sim")
    path = root / f"{history.default_name}.html"
    path.write_text(render.html(history, plots.figures(history), store=store.root), encoding="utf-8")
    out["history"] = (path, [f"t{len(store.trials())}", numbers(t)])
    store.close()
    # a bisect (real git repository, builds and search; boots replaying logs at each commit's rate), and the
    # history of its profile, whose boots recorded their revisions
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BOOTLAB_CACHE", str(root / "bisect" / "cache"))
        blab, _ = make_bisect_lab(root / "bisect", make_fake_host(), ["isb-barriers"] * 6 + ["icache-fix"] * 6)
        s = blab.bisect(BisectSpec("sim", [], good="HEAD~11", bad="main", jobs=2, seed_base=7))
    assert blab.store is not None and s["culprit"] is not None
    row = next(r for r in s["commits"] if r["symptom"])
    counted = row["symptom"] + row["clean"]
    lo, hi = wilson(row["symptom"], counted)
    culprit = s["culprit"]["commit"][:12]
    symptom = f"{row['symptom']}/{counted} {row['symptom'] / counted:.0%} [{lo:.0%}-{hi:.0%}]"
    for kind, page in (
        ("bisect", pages.load(blab.store, Ref("bisect", 1))),
        ("revisions", pages.load_history(blab.store, "sim")),
    ):
        path = root / "bisect" / f"{page.default_name}.html"  # beside the other history page, not over it
        path.write_text(render.html(page, plots.figures(page), store=blab.store.root), encoding="utf-8")
        wanted_text = (
            [culprit, f"{s['posterior']:.3f}", symptom] if kind == "bisect" else [culprit, "Pass rate per revision"]
        )
        out[kind] = (path, wanted_text)
    blab.store.close()
    yield out


def checks_trial(lab: Lab) -> dict[str, Any]:
    """A trial whose boots ran checks (issue 14): every other boot's `flaky` check fails, with long output and a
    long command line, which must wrap or scroll inside the page rather than widen it."""
    from bootlab.verdict import CheckResult, StageTime, Verdict

    long = "x" * 300 + " LONG-OUTPUT-END\n"

    async def boot_fn(profile: Profile, log: Path) -> Verdict:
        log.write_text("bootlab login: \n")
        ok = profile.boot % 2 == 0
        checks = [
            CheckResult(name="up", command="true", status="pass", exit_code=0, duration_s=0.2, t=3.0),
            CheckResult(
                name="flaky",
                command="sh -c " + "'test -e /some/rather/long/path/name' " * 8,
                status="pass" if ok else "fail",
                exit_code=0 if ok else 3,
                duration_s=0.4,
                t=3.3,
                reason=None if ok else "exit 3",
                output=long,
                output_bytes=len(long),
            ),
        ]
        return Verdict(
            outcome="pass" if ok else "check-failed",
            stage="login",
            stages=[StageTime(name="kernel", t=1.0 + profile.boot / 10), StageTime(name="login", t=3.0)],
            title=None if ok else "check flaky failed (exit 3)",
            duration_s=4.0,
            checks=checks,
        )

    checked = Lab(lab.project, lab.host, lab.store, boot_fn=boot_fn)
    return to_json(checked.trial(ArmSpec("sim", ["vars.checks=1"]), n=6, seed_base=9, jobs=1))


@pytest.mark.parametrize("kind", ["trial", "matrix", "comparison", "boot", "history", "checks", "bisect", "revisions"])
def test_report_renders_offline_in_chromium(
    kind: str, reports: dict[str, tuple[Path, list[str]]], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    path, expected = reports[kind]
    shots = Path(os.environ.get("BOOTLAB_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh profile: no cache, no extensions, nothing from earlier runs
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            offline=True,
            viewport={"width": 1200, "height": 900},
        )
        try:
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda req: requests.append(req.url))
            page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
            page.goto(path.as_uri(), wait_until="load")
            page.screenshot(path=str(shots / f"report-{kind}.png"), full_page=True)
            sizes = page.evaluate(
                "() => [...document.querySelectorAll('svg.plot')]"
                ".map(s => { const r = s.getBoundingClientRect(); return [r.width, r.height]; })"
            )
            text = page.evaluate("() => document.body.innerText")
            overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        finally:
            context.close()
    assert sizes, "no plot on the page"
    assert all(w > 200 and h > 60 for w, h in sizes), sizes
    expected_plots = {
        "trial": 5, "matrix": 1, "comparison": 5, "boot": 1, "history": 1, "checks": 5, "bisect": 3, "revisions": 2
    }[kind]  # fmt: skip
    assert len(sizes) == expected_plots
    for needle in expected:
        assert needle in text, needle
    assert overflow <= 0, f"the page is {overflow}px wider than the window"
    assert errors == []
    assert requests == [path.as_uri()]
