"""`bootlab trial PROFILE -n N`: N observed boots, J at a time, with a rate and its 95% interval.

Also holds the options that ``matrix`` and ``compare`` share (boots, jobs, strictness, seeds, notes, JSON), so the
three commands read alike. Exit 0 when the trial ran, whatever the rate; 1 when ``--target`` was refuted; 130
when interrupted (finished boots are kept and the trial is marked interrupted).

``--bisect-exit`` makes the exit code what ``git bisect run`` reads, by this rule: 0 (good) when no counted boot
showed a failure, 1 (bad) when one did (with ``--title REGEX`` only failures whose title matches count; others
count for nothing); with ``--until-confident --target RATE`` the SPRT decides instead (reached 0, refuted 1;
it counts every failure, so ``--title`` is refused there).
125 (skip) when nothing was counted (every boot a qemu/infra error), the SPRT stayed undecided, or the build
failed (``--build``/``--rev``); bad input exits 128 and an interrupt 130, which make ``git bisect run`` stop
rather than mark the commit.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, Literal, overload

from bootlab.cli.common import add_check_args, add_json_arg, add_profile_args, count, rate, seed_base
from bootlab.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from bootlab.lab.lab import Lab
    from bootlab.lab.results import Result
    from bootlab.lab.summary import Stopper
    from bootlab.profile.loader import Project
    from bootlab.source.revision import Revision
    from bootlab.vm.hold import HoldFirst


def add_run_args(p: argparse.ArgumentParser, *, n_default: int | None = None) -> None:
    """Options every trial-like command shares: -n, then :func:`add_lab_args`."""
    p.add_argument(
        "-n",
        type=count,
        default=n_default,
        required=n_default is None,
        metavar="N",
        help="boots per trial (the cap with --until-confident)",
    )
    add_lab_args(p)


def add_lab_args(
    p: argparse.ArgumentParser,
    *,
    jobs_help: str = "boots at a time (default: cores // vCPUs)",
    strict_help: str = "count boots with incidents as failures",
    note_help: str = "a note stored with the result",
) -> None:
    """Options of every command that boots through a Lab (trial, matrix, compare, bisect): -j, checks, --strict,
    --note, --seed-base, --force, --json, -q and --cluster; the help of the first three says what they mean there."""
    p.add_argument("-j", "--jobs", type=count, metavar="J", help=jobs_help)
    add_check_args(p)
    p.add_argument("--strict", action="store_true", help=strict_help)
    p.add_argument("--note", metavar="TEXT", help=note_help)
    p.add_argument("--seed-base", type=seed_base, metavar="S", help="derive every boot's seed from S (replayable)")
    p.add_argument("--force", action="store_true", help="boot even when lint reports errors")
    add_json_arg(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no live progress on stderr")
    add_cluster_arg(p)


def add_cluster_arg(p: argparse.ArgumentParser) -> None:
    """``--cluster``: every command that boots through a Lab (trial, matrix, compare, bisect); see make_lab."""
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="boot on the Dask workers of this scheduler (tcp:// or tls://; default $BOOTLAB_CLUSTER, else "
        "`cluster =` in bootlab.toml; `local` boots here)",
    )


def add_confidence_args(p: argparse.ArgumentParser) -> None:
    """``--until-confident`` with ``--target``/``--width``: a trial, or each cell of a matrix."""
    p.add_argument("--until-confident", action="store_true", help="stop as soon as --target or --width is settled")
    p.add_argument("--target", type=rate, metavar="RATE", help="with --until-confident: SPRT of rate >= RATE")
    p.add_argument("--width", type=rate, metavar="W", help="with --until-confident: stop when the interval < W")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bootlab.cli.source import add_rev_arg

    p = sub.add_parser("trial", help="boot a profile N times: pass rate with its 95%% interval, crash titles, timings")
    add_profile_args(p, seed=False)
    add_run_args(p)
    add_confidence_args(p)
    add_rev_arg(p)
    p.add_argument("--build", action="store_true", help="run the profile's build in place (your tree) first")
    p.add_argument(
        "--bisect-exit", action="store_true", help="exit as `git bisect run` reads it: 0 good, 1 bad, 125 skip"
    )
    p.add_argument("--title", metavar="REGEX", help="with --bisect-exit: only failures whose title matches are bad")
    p.add_argument(
        "--hold-first-crash",
        action="store_true",
        help="keep the first crashing (or hanging) boot paused as a named VM with a gdb stub; the trial goes on",
    )
    p.set_defaults(func=run_trial)


def make_lab(
    args: argparse.Namespace,
    project: Project | None = None,
    revision: Revision | None = None,
    store_root: Path | None = None,
) -> Lab:
    """Project, host probe, store: what every lab command opens (``project``: one that boots a --rev build;
    ``store_root``: the store to carry on in, `bisect --resume`'s, whatever the project's own says)."""
    from bootlab.host import probe
    from bootlab.lab.lab import Lab
    from bootlab.profile.loader import load_project
    from bootlab.store.db import open_store

    if project is None:
        project = load_project(args.config)
    force = getattr(args, "force", False)
    cluster = cluster_lab(args, project, force, revision, store_root)
    if cluster is not None:
        return cluster
    return Lab(project, probe(), open_store(project, store_root), force=force, revision=revision)


@overload
def stopper_from(args: argparse.Namespace, *, required: Literal[True]) -> Stopper: ...
@overload
def stopper_from(args: argparse.Namespace, *, required: bool = False) -> Stopper | None: ...
def stopper_from(args: argparse.Namespace, *, required: bool = False) -> Stopper | None:
    """The ``--until-confident`` stopper of a trial (or a fresh one for each matrix cell), or None."""
    from bootlab.lab.stats import Sprt
    from bootlab.lab.summary import Stopper

    if args.until_confident:
        if args.target is None and args.width is None:
            raise UsageError(
                "--until-confident needs --target RATE (e.g. --target 0.9) or --width W (e.g. --width 0.2)"
            )
        return Stopper(sprt=Sprt(args.target) if args.target is not None else None, width=args.width)
    if args.target is not None or args.width is not None:
        raise UsageError("--target/--width only make sense with --until-confident; add it, or drop them")
    if required:
        raise UsageError("--until-confident is needed here")
    return None


def cluster_lab(
    args: argparse.Namespace,
    project: Project,
    force: bool,
    revision: Revision | None = None,
    store_root: Path | None = None,
) -> Lab | None:
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

    store = open_store(project, store_root)
    return ClusterLab(project, probe(), store, cluster=config, force=force, quiet=args.quiet, revision=revision)


def progress_for(args: argparse.Namespace, title: str) -> Any:
    from bootlab.report.progress import make_progress

    return make_progress(title, quiet=getattr(args, "quiet", False))


def emit_json(result: Result | dict[str, Any]) -> None:
    """A result's ``--json`` (a bisect's summary is already its JSON object)."""
    from bootlab.lab.results import to_json

    json.dump(result if isinstance(result, dict) else to_json(result), sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def run_trial(args: argparse.Namespace) -> int:
    if not args.bisect_exit:
        if args.title is not None:
            raise UsageError("--title goes with --bisect-exit (it says which failures make a commit bad); add it")
        return _trial(args)[0]
    from bootlab.errors import BootlabError, InfraError
    from bootlab.lab.bisect import title_pattern

    try:
        if args.title is not None:
            title_pattern(args.title)
            if args.until_confident and args.target is not None:
                # the SPRT stops on every failure it sees, so the title could not be what decides
                raise UsageError(
                    "--title cannot go with --until-confident --target: the SPRT counts every failure, whatever "
                    "its title; drop --title, or --until-confident to count only the failures it matches"
                )
        code, result = _trial(args)
    except InfraError as exc:  # a build-error, or bootlab could not run the boots: skip this commit
        print(f"bootlab: {exc}", file=sys.stderr)
        return bisect_said(125, "skip: " + str(exc).split(";")[0])
    except BootlabError as exc:  # bad input: stop `git bisect run` instead of marking commits
        print(f"bootlab: {exc}", file=sys.stderr)
        return bisect_said(*BISECT_ABORT)
    if result is None or code == 130:
        return code
    return bisect_exit(args, result)


def _hold_first(args: argparse.Namespace, lab: Lab) -> HoldFirst | None:
    """``--hold-first-crash``: the trial's boots run in one-shot VM supervisors (the runner still schedules them),
    and the first crash or hang is held. Local boots only: a held VM lives on this machine."""
    if not getattr(args, "hold_first_crash", False):
        return None
    from bootlab.lab.lab import Lab

    if type(lab) is not Lab:
        raise UsageError(
            "--hold-first-crash keeps a VM on this machine: it cannot go with --cluster (use --cluster local)"
        )
    from bootlab.vm.hold import HoldFirst

    holder = HoldFirst()
    lab.boot_fn = holder.boot_fn(lab.project.root)
    return holder


def _print_held(holder: HoldFirst) -> None:
    from bootlab.vm.hold import held_lines

    if holder.held is None or holder.verdict is None:
        print("  held: no boot crashed or hung, so no VM was kept", flush=True)
        return
    v = holder.verdict
    print(f"  first {v.outcome} (seed {v.seed}): {v.title}", flush=True)
    for line in held_lines(holder.held, v):
        print(f"  {line}", flush=True)


#: ``--bisect-exit`` on bad input (options argparse refuses included): 128 makes ``git bisect run`` stop
BISECT_ABORT = (128, "abort: bad input")


def bisect_said(code: int, why: str) -> int:
    print(f"bootlab: --bisect-exit {code} ({why})", file=sys.stderr)
    return code


def bisect_exit(args: argparse.Namespace, result: dict[str, Any]) -> int:
    """The ``--bisect-exit`` rule (see the module docstring) applied to a finished trial's result."""
    from bootlab.lab.bisect import title_pattern

    seq = result.get("sequential") or {}
    if seq.get("method") == "sprt":
        decision = seq.get("decision")
        if decision == "reached":
            return bisect_said(0, f"good: target {seq.get('target'):.0%} reached")
        if decision == "refuted":
            return bisect_said(1, f"bad: target {seq.get('target'):.0%} refuted")
        return bisect_said(125, "skip: the SPRT is undecided at the cap")
    if not result["boots"]:
        return bisect_said(125, "skip: no boot was counted (qemu/infra errors only)")
    failures = result["titles"]
    if args.title is not None:
        pattern = title_pattern(args.title)
        failures = [t for t in failures if pattern.search(t["title"])]
    bad = sum(t["count"] for t in failures)
    if bad:
        return bisect_said(1, f"bad: {bad} of {result['boots']} boots failed")
    return bisect_said(0, f"good: no failure in {result['boots']} boots")


def _trial(args: argparse.Namespace) -> tuple[int, dict[str, Any] | None]:
    from bootlab.lab.lab import ArmSpec

    if args.hold_first_crash and args.cluster not in (None, "local"):
        raise UsageError("--hold-first-crash keeps a VM on this machine: it cannot go with --cluster; drop one")
    stopper = stopper_from(args)
    project = revision = None
    if args.rev or args.build:
        from bootlab.cli.source import at_revision, build_here
        from bootlab.profile.loader import load_project

        project = load_project(args.config)
        if args.rev and args.build:
            raise UsageError("--rev builds in bootlab's own checkout, --build in your tree: give one of them")
        if args.rev:
            project, revision = at_revision(args, project, args.profile, list(args.sets), args.rev)
        else:
            build_here(args, project, args.profile, list(args.sets))
    lab = make_lab(args, project, revision)
    holder = _hold_first(args, lab)
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
    for line in result.lint:
        print(f"lint {line}", file=sys.stderr)
    from bootlab.lab.results import to_json

    if holder is not None:
        result.held = holder.to_json()
    data = to_json(result)
    if args.json:
        emit_json(result)
    else:
        from bootlab.report.text import print_trial

        # the build every boot came from (`show tN` reads the same from the store), so the replay names it
        print_trial({**data, "revisions": [revision.to_json()]} if revision is not None else data)
        if holder is not None:
            _print_held(holder)
    if result.interrupted:
        return 130, data
    seq = result.sequential or {}
    return (1 if seq.get("decision") == "refuted" else 0), data
