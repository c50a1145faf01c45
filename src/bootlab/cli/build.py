"""`bootlab build PROFILE [--rev REV]`: run the profile's build, output streamed (stderr) and logged.

Without ``--rev`` the build runs in place, in your tree (as ``make`` would), and the profile boots the outputs
where they are. With ``--rev REV`` the revision is checked out in bootlab's own worktree (your tree is never
touched), built there, and its outputs are kept in bootlab's cache, where ``trial/compare/matrix --rev REV`` and
``bisect`` find them without building again. Prints where the outputs are, their sha256 and the revision.
Exit 0 built, 3 build-error (the command failed or an output is missing), 2 bad input.
"""

from __future__ import annotations

import argparse
import sys

from bootlab.cli.common import add_json_arg, add_profile_args


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "build", help="run a profile's build (in place, or of a revision with --rev): the images it boots"
    )
    add_profile_args(p, seed=False)
    p.add_argument("--rev", metavar="REV", help="build this revision in bootlab's own checkout (your tree untouched)")
    p.add_argument("--rebuild", action="store_true", help="with --rev: build again even when the cache has it")
    add_json_arg(p)
    p.add_argument("-q", "--quiet", action="store_true", help="do not stream the build's output (it is still logged)")
    p.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from bootlab.paths import sha256_file
    from bootlab.profile.loader import load_project
    from bootlab.source.build import build_at, build_in_place

    project = load_project(args.config)
    stream = None if args.quiet else sys.stderr

    def announce(text: str) -> None:
        if not args.quiet:
            print(f"bootlab: {text}", file=sys.stderr, flush=True)

    if args.rev:
        built = build_at(
            project, args.profile, list(args.sets), args.rev, stream=stream, announce=announce, rebuild=args.rebuild
        )
    else:
        if args.rebuild:
            from bootlab.errors import UsageError

            raise UsageError("--rebuild goes with --rev (an in-place build always runs); drop it")
        built = build_in_place(project, args.profile, list(args.sets), stream=stream)
    data = built.to_json()
    digests = {}
    for out, path in built.outputs.items():
        if Path(path).is_file():
            digests[out] = sha256_file(path)
    data["sha256"] = digests
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    rev = built.revision
    how = "reused the cached build" if built.cached else f"built in {built.seconds:.1f} s"
    print(f"build {args.profile}: {how}" + (f" at {rev.short()}" if rev and rev.commit else " (not in git)"))
    for out, path in built.outputs.items():
        digest = digests.get(out)
        print(f"  {out}: {path}" + (f"  sha256 {digest[:16]}" if digest else ""))
    if built.log:
        print(f"  log: {built.log}")
    return 0
