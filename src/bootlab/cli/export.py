"""`bootlab export ID --format json|csv|junit`: a stored trial's boots for other tools.

JUnit XML makes each boot a test case (failure = the guest failed, error = qemu-error/infra-error, with the crash
title as message and the fatal line and seed in the body), so CI systems show boots the way they show tests. Each
check a boot ran is a test case of its own right after it, under the boot's class name
(``bootlab.PROFILE.b12``): failure when it failed, timed out or the guest crashed during it, skipped when it did
not run; its output is the case's ``system-out``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Any

from bootlab.cli.common import STORE_CONFIG_HELP, add_config_arg

FORMATS = ("json", "csv", "junit")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("export", help="a stored trial (or boot) as JSON, CSV or JUnit XML")
    p.add_argument("id", metavar="ID", help="a trial (t12) or a boot (b345)")
    p.add_argument("--format", default="json", metavar="FMT", help="json (default), csv or junit")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout")
    add_config_arg(p, STORE_CONFIG_HELP)
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from bootlab.errors import UsageError
    from bootlab.profile.loader import load_project
    from bootlab.store.db import open_store, parse_ref

    fmt = args.format.lower()
    if fmt not in FORMATS:
        raise UsageError(f"--format {args.format}: unknown format; use one of {', '.join(FORMATS)}")
    ref = parse_ref(args.id)
    if ref.kind not in ("trial", "boot"):
        raise UsageError(f"export {ref}: a {ref.kind} cannot be exported; export its trials (see `bootlab show {ref}`)")
    with open_store(load_project(args.config), existing=True) as store:
        trial, boots = collect(store, ref)
    text = {"json": to_json, "csv": to_csv, "junit": to_junit}[fmt](trial, boots)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


def collect(store: Any, ref: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The trial (None for a single boot) and its boots, each with the ``sets`` it ran with (for replay)."""
    from bootlab.store.rows import boot_json, boot_sets

    if ref.kind == "boot":
        row = store.require(ref)
        return None, [{**boot_json(row), "sets": boot_sets(store, row)}]
    from bootlab.lab.lab import stored_trial
    from bootlab.lab.results import to_json

    result, _ = stored_trial(store, ref.id)
    return to_json(result), [{**boot_json(b), "sets": result.sets} for b in store.boots(ref.id)]


def to_json(trial: dict[str, Any] | None, boots: list[dict[str, Any]]) -> str:
    return json.dumps({"trial": trial, "boots": boots}, indent=2) + "\n"


CSV_FIELDS = ["boot", "trial", "idx", "profile", "seed", "outcome", "stage", "title", "duration_s", "incidents"]
CSV_FIELDS += ["accel", "checks"]


def to_csv(trial: dict[str, Any] | None, boots: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for b in boots:
        v = b["verdict"]
        w.writerow(
            {
                "boot": b["boot"],
                "trial": b["trial"],
                "idx": b["idx"],
                "profile": b["profile"],
                "seed": b["seed"],
                "outcome": b["outcome"],
                "stage": v.get("stage"),
                "title": b["title"],
                "duration_s": v.get("duration_s"),
                "incidents": "; ".join(i["title"] for i in v.get("incidents", [])),
                "accel": v.get("accel"),
                "checks": "; ".join(f"{c['name']}={c['status']}" for c in v.get("checks", [])),
            }
        )
    return buf.getvalue()


def to_junit(trial: dict[str, Any] | None, boots: list[dict[str, Any]]) -> str:
    import xml.etree.ElementTree as ET

    from bootlab.lab.summary import Tally, replay_command
    from bootlab.verdict import Verdict

    name = f"bootlab {trial['trial']} {trial['profile']}" if trial else f"bootlab {boots[0]['boot']}"
    checks = [c for b in boots for c in b["verdict"].get("checks", [])]
    # a boot is a failure when the guest failed, an error when QEMU or bootlab did (not counted in a rate)
    # a strict trial counted a pass with incidents as a failure: so does its JUnit (the rate property says so too)
    strict = bool(trial and trial.get("strict"))
    tally = Tally()
    judged = [tally.add(Verdict.model_validate(b["verdict"]), strict) for b in boots]
    failures = tally.failed + sum(1 for c in checks if c["status"] in ("fail", "timeout", "crash"))
    errors = tally.excluded
    skipped = sum(1 for c in checks if c["status"] == "skipped")
    total_time = sum(float(b["verdict"].get("duration_s") or 0) for b in boots)
    suites = ET.Element("testsuites")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=name,
        tests=str(len(boots) + len(checks)),
        failures=str(failures),
        errors=str(errors),
        skipped=str(skipped),
        time=f"{total_time:.3f}",
    )
    if trial is not None:
        props = ET.SubElement(suite, "properties")
        for key in ("rate", "ci95", "seed_base", "sets"):
            ET.SubElement(props, "property", name=key, value=json.dumps(trial.get(key)))
    for b, passed in zip(boots, judged, strict=True):
        v = b["verdict"]
        case = _testcase(suite, f"bootlab.{b['profile']}", f"boot {b['idx']} seed {b['seed']} ({b['boot']})", v)
        body = "\n".join(
            x
            for x in (
                f"outcome: {b['outcome']} at stage {v.get('stage')}",
                f"fatal line: {v['fatal_line']}" if v.get("fatal_line") else "",
                f"replay: {replay_command(b['profile'], b['sets'], b['seed'], b.get('revision'))}",
                f"log: bootlab show {b['boot']} --log",
            )
            if x
        )
        if passed is None:
            ET.SubElement(case, "error", message=b["title"] or b["outcome"], type=b["outcome"]).text = body
        elif not passed:
            ET.SubElement(case, "failure", message=b["title"] or b["outcome"], type=b["outcome"]).text = body
        if v.get("incidents"):
            ET.SubElement(case, "system-out").text = "\n".join(
                f"incident [{i['kind']}] {i['title']}" for i in v["incidents"]
            )
        for c in v.get("checks", []):
            _check_case(suite, b, c)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _testcase(suite: Any, classname: str, name: str, timed: dict[str, Any]) -> Any:
    """A JUnit test case for a boot or a check (``timed``: its JSON, whose ``duration_s`` may be missing)."""
    import xml.etree.ElementTree as ET

    return ET.SubElement(
        suite, "testcase", classname=classname, name=name, time=f"{float(timed.get('duration_s') or 0):.3f}"
    )


def _check_case(suite: Any, boot: dict[str, Any], check: dict[str, Any]) -> None:
    """One check of ``boot`` as a test case under the boot's class name."""
    import re
    import xml.etree.ElementTree as ET

    case = _testcase(suite, f"bootlab.{boot['profile']}.{boot['boot']}", f"check {check['name']}", check)
    status = check["status"]
    if status == "skipped":
        ET.SubElement(case, "skipped", message=check.get("reason") or "not run")
    elif status != "pass":
        message = f"check {check['name']}: {check.get('reason') or status}"
        ET.SubElement(case, "failure", message=message, type=status).text = f"command: {check['command']}"
    if check.get("output"):
        # XML 1.0 cannot carry most control characters: a check's output may hold any byte
        ET.SubElement(case, "system-out").text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "?", check["output"])
