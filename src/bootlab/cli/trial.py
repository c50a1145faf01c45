"""`bootlab trial PROFILE -n N`: N observed boots, J at a time, with a rate and its 95% interval.

Also holds the options that ``matrix`` and ``compare`` share (boots, jobs, strictness, seeds, notes, JSON), so the
three commands read alike. Exit 0 when the trial ran, whatever the rate; 1 when ``--target`` was refuted; 130
when interrupted (finished boots are kept and the trial is marked interrupted).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from bootlab.cli.common import add_profile_args
from bootlab.errors import UsageError

if TYPE_CHECKING:
    from bootlab.lab.session import Lab


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of boots (e.g. -n 10)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: needs at least 1")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate; give 0.9 or 90%") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text}: a rate is between 0 and 1 (or 0% and 100%), e.g. 0.9")
    return value


def _seed_base(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: the seed base is a non-negative number")
    return value


def add_run_args(p: argparse.ArgumentParser, *, n_default: int | None = None) -> None:
    """Options every lab command shares."""
    p.add_argument(
        "-n",
        type=_count,
        default=n_default,
        required=n_default is None,
        metavar="N",
        help="boots per trial (the cap with --until-confident)",
    )
    p.add_argument("-j", "--jobs", type=_count, metavar="J", help="boots at a time (default: cores // vCPUs)")
    p.add_argument("--strict", action="store_true", help="count boots with incidents as failures")
    p.add_argument("--note", metavar="TEXT", help="a note stored with the result")
    p.add_argument("--seed-base", type=_seed_base, metavar="S", help="derive every boot's seed from S (replayable)")
    p.add_argument("--force", action="store_true", help="boot even when lint reports errors")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no live progress on stderr")
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="boot on the Dask workers of this scheduler (tcp:// or tls://; default $BOOTLAB_CLUSTER, else "
        "`cluster =` in bootlab.toml; `local` boots here)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("trial", help="boot a profile N times: pass rate with its 95%% interval, crash titles, timings")
    add_profile_args(p, seed=False)
    add_run_args(p)
    p.add_argument("--until-confident", action="store_true", help="stop as soon as --target or --width is settled")
    p.add_argument("--target", type=_rate, metavar="RATE", help="with --until-confident: SPRT of rate >= RATE")
    p.add_argument("--width", type=_rate, metavar="W", help="with --until-confident: stop when the interval < W")
    p.set_defaults(func=run_trial)


def make_lab(args: argparse.Namespace) -> Lab:
    """Project, host probe, store: what every lab command opens."""
    from bootlab.host import probe
    from bootlab.lab.session import Lab
    from bootlab.profile.loader import load_project
    from bootlab.store.db import open_store

    project = load_project(args.config)
    force = getattr(args, "force", False)
    cluster = cluster_lab(args, project, force)
    if cluster is not None:
        return cluster
    return Lab(project, probe(), open_store(project), force=force)


def cluster_lab(args: argparse.Namespace, project: Any, force: bool) -> Lab | None:
    """A Lab whose boots run on the cluster, when ``--cluster``/``$BOOTLAB_CLUSTER``/bootlab.toml names one."""
    from bootlab.cluster.config import cluster_config, warn_if_exposed

    config = cluster_config(getattr(args, "cluster", None), project)
    if config is None:
        return None
    from bootlab.cluster import quiet_dask_logs, require_distributed

    require_distributed()
    if not getattr(args, "debug", False):
        quiet_dask_logs()
    warn_if_exposed(config, sys.stderr)
    from bootlab.cluster.lab import ClusterLab
    from bootlab.host import probe
    from bootlab.store.db import open_store

    return ClusterLab(project, probe(), open_store(project), cluster=config, force=force, quiet=args.quiet)


def progress_for(args: argparse.Namespace, title: str) -> Any:
    from bootlab.report.progress import make_progress

    return make_progress(title, quiet=getattr(args, "quiet", False))


def emit_json(obj: dict[str, Any]) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def run_trial(args: argparse.Namespace) -> int:
    from bootlab.lab.session import ArmSpec
    from bootlab.lab.stats import Sprt
    from bootlab.lab.trial import Stopper

    stopper = None
    if args.until_confident:
        if args.target is None and args.width is None:
            raise UsageError(
                "--until-confident needs --target RATE (e.g. --target 0.9) or --width W (e.g. --width 0.2)"
            )
        stopper = Stopper(sprt=Sprt(args.target) if args.target is not None else None, width=args.width)
    elif args.target is not None or args.width is not None:
        raise UsageError("--target/--width only make sense with --until-confident; add it, or drop them")
    lab = make_lab(args)
    try:
        spec = ArmSpec(args.profile, list(args.sets))
        result = lab.trial(
            spec,
            n=args.n,
            jobs=args.jobs,
            strict=args.strict,
            note=args.note,
            seed_base=args.seed_base,
            stopper=stopper,
            progress=progress_for(args, f"trial {args.profile}"),
        )
    finally:
        if lab.store is not None:
            lab.store.close()
    for line in result.pop("lint", []):
        print(f"lint {line}", file=sys.stderr)
    if args.json:
        emit_json(result)
    else:
        from bootlab.report.text import print_trial

        print_trial(result)
    if result["status"] == "interrupted":
        return 130
    seq = result.get("sequential") or {}
    return 1 if seq.get("decision") == "refuted" else 0
