"""Human-readable reports of trials, matrices and comparisons (the ``--json`` objects, rendered).

Every rate is printed with its 95% interval and its counts ("6/10 60% [31-83%]"), never alone: a bare "60%"
is how the user's notes ended up claiming more than ten boots can show.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping, Sequence
from typing import Any

from bootlab.lab.stats import p_text

#: How a trial's mark (:func:`bootlab.lab.summary.mark`) is drawn: the user's notes' emoji.
MARKS = {"pass": "✅", "flaky": "⚠️", "fail": "❌", "refused": "🚫", "none": "❔"}


def pct(x: float | None, *, signed: bool = False) -> str:
    """A share as a whole percentage (``60%``; ``signed``: ``+5%``, for a difference); ``-`` when unknown. The one
    percent format of the terminal, the report pages (the ``pct`` filter) and their figures."""
    if x is None:
        return "-"
    return f"{x:+.0%}" if signed else f"{x:.0%}"


def rate_text(r: Mapping[str, Any], *, counts: bool = True) -> str:
    """A rate with its 95% interval, from a summary's (or :meth:`bootlab.lab.summary.Tally.to_json`'s) keys:
    ``6/10 60% [31%-83%]``; without ``counts`` (shown beside it already) ``60% [31%-83%]``."""
    if not r.get("boots"):
        return "0 counted boots" if counts else "-"
    lo, hi = r["ci95"]
    text = f"{pct(r['rate'])} [{pct(lo)}-{pct(hi)}]"
    return f"{r['passed']}/{r['boots']} {text}" if counts else text


def signed_interval(ci: Sequence[float]) -> str:
    """An interval of a difference of rates: ``[-5%, +42%]`` (a comma: a hyphen would read as a minus)."""
    return f"[{pct(ci[0], signed=True)}, {pct(ci[1], signed=True)}]"


def difference_text(d: float, ci: Sequence[float]) -> str:
    """A difference of two rates with its interval: ``+20% [-5%, +42%]``."""
    return f"{pct(d, signed=True)} {signed_interval(ci)}"


def _console() -> Any:
    """stdout; when it is not a terminal, wide enough that tables are not wrapped into unreadable columns."""
    import sys

    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def decision_text(seq: dict[str, Any], *, interrupted: bool = False) -> str:
    """What ``--until-confident`` decided, for any decision of either rule (--target's SPRT, --width)."""
    decided = seq.get("decision")
    if decided == "reached":
        return f"target {pct(seq.get('target'))} reached"
    if decided == "refuted":
        return f"target {pct(seq.get('target'))} refuted (rate <= {pct(seq.get('refute_below'))})"
    if decided == "narrow":
        return f"interval narrower than {pct(seq.get('width'))}"
    if decided == "b-better":
        return "B passes more often than A"
    if decided == "a-better":
        return "A passes more often than B"
    if decided == "within-margin":
        return f"no difference of {pct(seq.get('margin'))} or more"
    return "undecided (interrupted)" if interrupted else "undecided at the cap"


def trial_lines(r: dict[str, Any], *, indent: str = "") -> list[str]:
    lines: list[str] = []
    strict = " (strict: boots with incidents count as failures)" if r.get("strict") else ""
    lines.append(f"{indent}pass rate: {rate_text(r)} (95% Wilson interval){strict}")
    if r.get("outcomes"):
        lines.append(f"{indent}outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items())))
    if r.get("excluded"):
        lines.append(f"{indent}excluded from the rate: {r['excluded']} qemu-error/infra-error boot(s)")
        for t in r.get("excluded_titles", []):
            lines.append(f"{indent}  {t['count']:>3} x {t['title']}")
    if r.get("warning"):
        lines.append(f"{indent}WARNING: {r['warning']}")
    if r.get("titles"):
        from bootlab.lab.summary import replay_command

        revisions = r.get("revisions") or []  # a --rev trial's boots all come from one build made apart
        *notes, replay = replay_command(
            r["profile"], r.get("sets", []), None, revisions[0] if len(revisions) == 1 else None
        ).split("\n")
        lines += [f"{indent}{line}" for line in notes]
        lines.append(f"{indent}failures by title (replay one: `{replay}`):")
        for t in r["titles"]:
            first = f" (first: {t['first_boot']}, " if t.get("first_boot") else " ("
            lines.append(f"{indent}  {t['count']:>3} x {t['title']}{first}seed {t['first_seed']})")
    if r.get("incidents"):
        lines.append(f"{indent}incidents (non-fatal):")
        for t in r["incidents"]:
            lines.append(f"{indent}  {t['count']:>3} x {t['title']} (first seed {t['first_seed']})")
    if r.get("checks"):
        lines.append(f"{indent}checks (over the boots they ran in):")
        for c in r["checks"]:
            timed = f", {c['timed_out']} timed out" if c.get("timed_out") else ""
            p50 = f", median {c['p50_s']:.2f}s" if c.get("p50_s") is not None else ""
            lines.append(f"{indent}  {c['name']}: {c['passed']}/{c['ran']} passed{timed}{p50}")
    if r.get("stages"):
        cells = "  ".join(f"{name} {s['p50']:.2f}/{s['p90']:.2f}/{s['max']:.2f}" for name, s in r["stages"].items())
        lines.append(f"{indent}stage times p50/p90/max (s): {cells}")
    seq = r.get("sequential")
    if seq:
        after = seq.get("decided_at") or seq["boots_used"]
        what = decision_text(seq, interrupted=r.get("status") == "interrupted")
        lines.append(f"{indent}until-confident: {what} after {after} boots")
        if seq.get("method") == "sprt":
            lines.append(f"{indent}  {seq['describe']}")
        # nothing is saved by a decision that was not made: the fixed-N figure is then only for information
        saved = f": {seq['saved']} saved" if seq.get("saved") is not None else ""
        if seq.get("fixed_n") is not None:
            lines.append(
                f"{indent}  a fixed-N test with the same guarantees needs {seq['fixed_n']} boots{saved} "
                f"(cap was {seq['cap']})"
            )
    return lines


def print_trial(r: dict[str, Any]) -> None:
    out = _console()
    sets = " ".join(f"--set {shlex.quote(s)}" for s in r.get("sets", []))
    status = "" if r.get("status") == "done" else f" [{r.get('status')}]"
    out.print(f"trial {r.get('trial') or '-'}: {r['profile']} {sets}{status}".rstrip(), markup=False)
    for line in trial_lines(r, indent="  "):
        out.print(line, markup=False)
    out.print(f"  seed base {r.get('seed_base')} (replay the whole trial with --seed-base)", markup=False)
    if r.get("status") == "interrupted":
        out.print("  interrupted: finished boots are kept; the numbers above cover only them", markup=False)


def common_title(r: dict[str, Any]) -> str:
    titles = r.get("titles") or []
    return titles[0]["title"] if titles else ""


def print_matrix(m: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    out = _console()
    status = "" if m.get("status") == "done" else f" [{m.get('status')}]"
    axes = m["axes"]
    table = Table(
        title=f"matrix {m.get('matrix') or '-'}: {m['profile']}, {m['n']} boots per cell{status}",
        title_justify="left",
    )
    for key in axes:
        table.add_column(key, no_wrap=True)
    sequential = any(cell.get("sequential") for cell in m["cells"])
    for col in ("", "pass rate [95% CI]", *(["until-confident"] if sequential else []), "commonest failure"):
        table.add_column(col, no_wrap=True)
    for cell in m["cells"]:
        values = [Text(str(cell["axes"][k])) for k in axes]  # Text: titles hold [brackets], not rich markup
        if cell.get("refused"):
            extra = [""] if sequential else []
            table.add_row(*values, MARKS["refused"], "refused by lint", *extra, Text("; ".join(cell["refused"])[:80]))
            continue
        seq = cell.get("sequential")
        decided = []
        if sequential:
            after = (seq or {}).get("decided_at") or (seq or {}).get("boots_used")
            what = decision_text(seq, interrupted=cell.get("status") == "interrupted") if seq else ""
            decided = [Text(f"{what} after {after}" if seq and seq.get("decision") != "undecided" else what)]
        table.add_row(*values, MARKS[cell["mark"]], rate_text(cell), *decided, Text(common_title(cell)))
    out.print(table)
    out.print(
        f"{MARKS['pass']} all passed  {MARKS['flaky']} some failed (flaky)  {MARKS['fail']} all failed  "
        f"{MARKS['refused']} refused by lint (not run); seed base {m.get('seed_base')}, the same seeds in every cell",
        markup=False,
    )


def print_comparison(c: dict[str, Any]) -> None:
    out = _console()
    a, b = c["a"], c["b"]
    out.print(f"comparison {c.get('comparison') or '-'}", markup=False)
    out.print(f"  A {a['label']}: {rate_text(a)}  ({a.get('trial') or '-'})", markup=False)
    out.print(f"  B {b['label']}: {rate_text(b)}  ({b.get('trial') or '-'})", markup=False)
    if c.get("difference") is not None:
        diff = difference_text(c["difference"], c["difference_ci95"])
        out.print(f"  difference B - A: {diff} (95% Newcombe)", markup=False)
    out.print(f"  Fisher exact two-sided p = {p_text(c['p_value'])}", markup=False)
    mark = MARKS["pass"] if c.get("significant") else MARKS["flaky"]
    out.print(f"  {mark} {c['sentence']}", markup=False)
    for line in timing_lines(c.get("timing"), indent="  "):
        out.print(line, markup=False)
    seq = c.get("sequential")
    if seq:
        interrupted = c.get("status") == "interrupted"
        after = seq.get("decided_at")
        when_text = f" after {after} pairs of boots" if after else ""
        out.print(f"  until-confident: {decision_text(seq, interrupted=interrupted)}{when_text}", markup=False)
        out.print(
            f"    e-values: B better {seq['e_b_better']:.3g}, A better {seq['e_a_better']:.3g} (decide at "
            f"{seq['threshold']:g}); B - A within {signed_interval(seq['difference_cs'])} "
            f"at every step with {pct(1 - seq['beta'])} confidence",
            markup=False,
        )
        out.print(f"    {seq['describe']}", markup=False)
        if seq.get("fixed_n") is not None:
            saved = f": {seq['saved']} saved" if seq.get("saved") is not None else ""
            out.print(
                f"    a fixed-N Fisher test with the same alpha and {pct(1 - seq['beta'])} power needs "
                f"{seq['fixed_n']} boots each{saved}",
                markup=False,
            )
    for side in (a, b):
        if side.get("warning"):
            out.print(f"  WARNING ({side['label']}): {side['warning']}", markup=False)


def timing_lines(timing: dict[str, Any] | None, *, indent: str = "") -> list[str]:
    """Stage-time medians of both arms and the rank test per stage, then the sentence on time to ready."""
    if not timing or not timing.get("stages"):
        return []
    rows = timing["stages"]
    width = max(len(r["stage"]) for r in rows)
    lines = [f"{indent}stage times, median A vs B (n), Mann–Whitney two-sided p:"]
    for r in rows:
        p = p_text(r["p_value"])
        how = ""
        if r["p_value"] is not None and r["p_value"] < 0.05 and r["direction"]:
            how = "  B slower" if r["direction"] > 0 else "  B faster"
        lines.append(
            f"{indent}  {r['stage']:<{width}}  {r['a_p50']:7.2f} s ({r['n_a']}) vs {r['b_p50']:7.2f} s ({r['n_b']})"
            f"  p = {p}{how}"
        )
    lines.append(f"{indent}{timing['sentence']}")
    return lines


def when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def register_lines(registers: list[dict[str, Any]]) -> list[str]:
    """The registers of a crash (a verdict's ``registers``, as dicts), two lines per vCPU at most: PC/SP/LR with
    their symbols, then what the gdb stub added: on aarch64 the last exception decoded from ESR_EL1 with ESR, ELR
    and SPSR (and the EL the vCPU is at), on x86_64 CR2 and CR3; or, when the stub could not be read, why (so a
    missing fault line is never mistaken for "no fault")."""
    lines = []
    for r in registers:
        cpu = f"cpu{r['cpu']}"
        sym = "  ".join(f"{k}={v}" for k, v in (r.get("symbols") or {}).items())
        lines.append(f"{cpu}: pc={r.get('pc')} sp={r.get('sp')} lr={r.get('lr')} {sym}".rstrip())
        if r.get("exception"):
            spsr = f" spsr={r['spsr']}" if r.get("spsr") else ""
            el = f" (cpu at EL{r['el']})" if r.get("el") is not None else ""
            lines.append(f"{cpu}: last exception: {r['exception']}; esr={r.get('esr')} elr={r.get('elr')}{spsr}{el}")
        x86 = " ".join(f"{k}={r[k]}" for k in ("cr2", "cr3") if r.get(k))
        if x86:
            lines.append(f"{cpu}: {x86}")
        if r.get("stub_error"):
            lines.append(f"{cpu}: no fault registers: {r['stub_error']}")
    return lines


def stopped_lines(stopped: dict[str, object] | None, last: int = 5) -> list[str]:
    """Where a hang or timeout stopped, in :func:`verdict_lines`: the rule that fired, whether output
    still flowed, and the console's last lines."""
    if not stopped:
        return []
    rule = stopped.get("rule")
    flowing = "while output kept coming" if stopped.get("flowing") else f"silent for {stopped.get('silent_s')}s"
    if rule == "quiet":
        why = f"no console output for {stopped.get('silent_s')}s (quiet timeout)"
    elif rule == "no-progress":
        why = (
            f"no new milestone and no new line for twice the quiet timeout, {flowing} "
            f"({stopped.get('lines_since_progress')} lines repeating since t={stopped.get('progress_t')}s)"
        )
    else:
        why = f"the overall timeout, {flowing}"
    out = [f"  stopped: {why}"]
    lines = stopped.get("last_lines") or []
    if isinstance(lines, list) and lines:
        out.append("  last lines:")
        out += [f"    | {line}" for line in lines[-last:]]
    return out


def _at(t: float | None) -> str:
    return f" (t={t:.2f}s)" if t is not None else ""


def verdict_lines(v: Mapping[str, Any], *, title: bool = True) -> list[str]:
    """What a verdict (a ``Verdict`` as JSON) says under the headline each command writes itself (a boot's outcome
    and time, a stored boot's ids, a VM's name): its title (unless the headline has it), the fatal line and the
    death with their times when known, the incidents, where a hang stopped, the crash's registers and the checks;
    each line indented two spaces. ``boot``, ``show BOOT``, ``classify`` and ``vm launch``/``start`` print it, so
    a verdict reads the same wherever it is shown."""
    lines = []
    if title and v.get("title"):
        lines.append(f"  title: {v['title']}")
    if v.get("fatal_line"):
        lines.append(f"  fatal line{_at(v.get('fatal_t'))}: {v['fatal_line']}")
    death = v.get("death")
    if death:
        lines.append(f"  died of{_at(death.get('t'))}: {death['title']}")
    for inc in v.get("incidents") or []:
        lines.append(f"  incident [{inc['kind']}] {inc['title']}")
    lines += stopped_lines(v.get("stopped"))
    lines += [f"  {line}" for line in register_lines(v.get("registers") or [])]
    lines += [f"  {line}" for line in check_lines(v.get("checks") or [])]
    return lines


def check_lines(checks: list[dict[str, Any]], *, output_lines: int = 5) -> list[str]:
    """A verdict's checks (as dicts), one line each, in the order they ran: ``check net: pass (0.41s)``; a check
    that did not pass says why, what it ran and the last ``output_lines`` lines of its output."""
    lines = []
    for c in checks:
        took = f" ({c['duration_s']:g}s)" if c.get("duration_s") is not None else ""
        if c["status"] == "pass":
            lines.append(f"check {c['name']}: pass{took}")
            continue
        why = f", {c['reason']}" if c.get("reason") else ""
        lines.append(f"check {c['name']}: {c['status'].upper()}{why}{took}: {c['command']}")
        tail = (c.get("output") or "").rstrip("\n").splitlines()[-output_lines:]
        cut = f" (of {c['output_bytes']} bytes)" if c.get("output_bytes", 0) > len(c.get("output") or "") else ""
        lines += [f"  | {line}" for line in tail]
        if tail and cut:
            lines.append(f"  | ...{cut}")
    return lines
