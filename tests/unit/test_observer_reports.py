"""The observer's general report mechanisms, on a small pack written here (not the shipped packs' data):
first-report precedence and the verdict's death, guilty-frame selection (skip, helper and anchor groups,
renames, frames after a line, the end of the first stack), reports cut short by the next one, interleaved
output told apart by context, and the literal prefilter. Pack errors are one line (exit 2)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from bootlab.console.classify import classify_text
from bootlab.console.observer import Observer
from bootlab.errors import UsageError
from bootlab.packs.loader import Prefilter, compile_packs, read_pack_file, required_literals
from bootlab.verdict import normalise_title

PACK = r"""
name = "toy"
description = "a toy kernel for the observer's report mechanisms"
reference = "tests/unit/test_observer_reports.py"

[context]
regex = '\[(?P<context>T\d+)\]'
open_after = 'all CPUs follow'
reference = "test"

[frames]
regex = ['^(?:\[T\d+\])?\s+(?P<frame>[A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+']
pc = ['PC: (?P<frame>[A-Za-z_][\w.]*)\+0x']
start = ['Stack:']
reference = "test"

[[frames.rename]]
regex = '__x64_sys_(?P<name>\w+)'
to = "sys_{name}"
reference = "test"

[[frames.group]]
name = "reporting"
skip_always = true
regex = ['^(?:dump_stack|panic|report_bug)$']
reference = "test"

[[frames.group]]
name = "helpers"
helper = true
regex = ['^(?:memcpy|kmalloc)$']
reference = "test"

[[frames.group]]
name = "dispatch"
regex = ['^do_syscall$', 'worker_loop']
reference = "test"

[[frames.group]]
name = "rcu-sync"
regex = ['^synchronize_\w+$']
title = "synchronize_rcu"
reference = "test"

[[signature]]
id = "toy-panic-after-warn"
regex = 'PANIC: warn set'
kind = "panic"
fatal = true
cause_window = 50
cause_kinds = ["warning"]
title = "toy: panic: warn set"
reference = "test"

[[signature]]
id = "toy-fatal-exception"
regex = 'PANIC: fatal exception'
kind = "panic"
fatal = true
cause_window = 50
title = "toy: panic: fatal exception"
reference = "test"

[[signature]]
id = "toy-panic"
regex = 'PANIC: (?P<reason>.+)'
kind = "panic"
fatal = true
title = "toy: panic: {reason}"
reference = "test"

[[signature]]
id = "toy-warning"
regex = 'WARNING at (?P<frame>\w+)'
kind = "warning"
fatal = false
title = "toy: WARNING in {frame}"
follow = 20
frame = true
reference = "test"

[[signature]]
id = "toy-oops"
regex = 'OOPS'
kind = "oops"
fatal = true
title = "toy: oops in {frame}"
title_fallback = "toy: oops"
follow = 20
frame = true
reference = "test"

[[signature]]
id = "toy-banner"
regex = 'BANNER'
kind = "oops"
fatal = true
title = "toy: banner"
interrupts = false
reference = "test"

[[signature]]
id = "toy-stall"
regex = 'STALL'
kind = "stall"
fatal = true
title = "toy: stall in {frame}"
title_fallback = "toy: stall"
follow = 20
frame = true
frame_pick = "above-anchor"
frame_anchor = ["dispatch"]
frame_after = 'interrupted:'
reference = "test"

[[signature]]
id = "toy-hang"
regex = 'HANG'
kind = "hang"
fatal = false
title = "toy: hang in {frame}"
follow = 20
frame = true
frame_pick = "anchor"
frame_anchor = ["rcu-sync"]
reference = "test"

[[signature]]
id = "toy-segfault"
regex = 'segfault in (?P<process>\w+)'
kind = "segfault"
fatal = false
title = "toy: segfault in {process}"
reference = "test"
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> object:
    path = tmp_path_factory.mktemp("packs") / "toy.toml"
    path.write_text(PACK)
    return compile_packs([read_pack_file(path)])


def observe(packs: object, text: str) -> Observer:
    obs = Observer(packs)  # type: ignore[arg-type]
    obs.feed_text(text)
    obs.finish()
    return obs


# ---------------------------------------------------------------- first report, death


def test_the_report_titles_the_boot_and_the_panic_is_its_death(toy: object) -> None:
    obs = Observer(toy)  # type: ignore[arg-type]
    obs.feed(b"WARNING at foo_probe\n", 1.0)
    obs.feed(b"PANIC: warn set\n", 1.5)
    obs.finish()
    assert obs.fatal is not None and obs.fatal.title == "toy: WARNING in foo_probe"
    assert obs.fatal.t == 1.0 and obs.fatal_t == 1.0
    assert obs.death is not None and (obs.death.title, obs.death.t) == ("toy: panic: warn set", 1.5)
    assert obs.incidents == []  # the warning is the fatal report now, not an incident


def test_a_panic_with_no_report_before_it_is_the_report(toy: object) -> None:
    obs = observe(toy, "booting\nPANIC: warn set\n")
    assert obs.fatal is not None and obs.fatal.title == "toy: panic: warn set"
    assert obs.death is None


def test_only_the_kinds_a_panic_names_can_cause_it(toy: object) -> None:
    obs = observe(toy, "segfault in getty\nPANIC: warn set\n")
    assert obs.fatal is not None and obs.fatal.title == "toy: panic: warn set"
    assert [i.title for i in obs.incidents] == ["toy: segfault in getty"]


def test_a_report_out_of_the_window_is_not_the_cause(toy: object) -> None:
    obs = observe(toy, "WARNING at foo_probe\n" + "noise\n" * 60 + "PANIC: warn set\n")
    assert obs.fatal is not None and obs.fatal.title == "toy: panic: warn set"
    assert [i.title for i in obs.incidents] == ["toy: WARNING in foo_probe"]


def test_a_panic_after_a_fatal_report_is_its_death(toy: object) -> None:
    obs = observe(toy, "OOPS\nPC: bar_read+0x1/0x2\nPANIC: fatal exception\n")
    assert obs.fatal is not None and obs.fatal.title == "toy: oops in bar_read"
    assert obs.death is not None and obs.death.title == "toy: panic: fatal exception"


def test_the_panic_names_an_earlier_report_than_the_fatal_one_seen(toy: object) -> None:
    """A warning, then a stall printed by someone else, then the warning's panic: the warning titles it."""
    obs = observe(toy, "WARNING at foo_probe\nSTALL\nPANIC: warn set\n")
    assert obs.fatal is not None and obs.fatal.title == "toy: WARNING in foo_probe"
    assert obs.death is not None and obs.death.title == "toy: panic: warn set"


def test_the_death_is_in_the_verdict_and_its_json(toy: object) -> None:
    verdict = classify_text("WARNING at foo_probe\nPANIC: warn set\n", toy)  # type: ignore[arg-type]
    assert verdict.outcome == "crash" and verdict.title == "toy: WARNING in foo_probe"
    assert verdict.fatal_line == "WARNING at foo_probe"
    data = json.loads(verdict.model_dump_json())
    assert data["death"] == {"title": "toy: panic: warn set", "line": "PANIC: warn set", "t": None}


def test_boot_text_output_shows_the_death(toy: object, capsys: pytest.CaptureFixture[str]) -> None:
    from bootlab.cli.boot import _show

    verdict = classify_text("WARNING at foo_probe\nPANIC: warn set\n", toy)  # type: ignore[arg-type]
    _show(argparse.Namespace(json=False), verdict)
    out = capsys.readouterr().out
    assert "title: toy: WARNING in foo_probe" in out and "died of: toy: panic: warn set" in out
    _show(argparse.Namespace(json=True), verdict)
    assert json.loads(capsys.readouterr().out)["death"]["title"] == "toy: panic: warn set"


# ---------------------------------------------------------------- guilty frame


@pytest.mark.parametrize(
    ("text", "title"),
    [
        pytest.param(
            "OOPS\nPC: panic+0x1/0x2\nStack:\n dump_stack+0x1/0x2\n __x64_sys_frob+0x1/0x2\n",
            "toy: oops in sys_frob",
            id="generic_frames_are_skipped_and_syscall_wrappers_renamed",
        ),
        pytest.param(
            "OOPS\nStack:\n dump_stack+0x1/0x2\nStack:\n other_task+0x1/0x2\n",
            "toy: oops",
            id="frames_come_from_the_first_stack_only",
        ),
        pytest.param(
            "STALL\n reporter_fn+0x1/0x2\ninterrupted:\n spin_fn+0x1/0x2\n frob_ioctl+0x1/0x2\n do_syscall+0x1/0x2\n",
            "toy: stall in frob_ioctl",
            id="a_stall_is_titled_above_its_first_dispatcher_after_the_interrupt",
        ),
        pytest.param(
            "STALL\n reporter_fn+0x1/0x2\n", "toy: stall", id="a_stall_without_its_interrupt_line_keeps_only_its_kind"
        ),
        pytest.param(
            "OOPS\nBANNER\nPC: real_fn+0x1/0x2\n",
            "toy: oops in real_fn",
            id="a_banner_printed_inside_a_report_does_not_cut_it_short",
        ),
        pytest.param(
            "[T1] OOPS\n[T2] Stack:\n[T2]  other_fn+0x1/0x2\n[T1] Stack:\n[T1]  mine_fn+0x1/0x2\n",
            "toy: oops in mine_fn",
            id="other_contexts_lines_are_not_the_reports_frames",
        ),
        pytest.param(
            "[T1] OOPS\n[T1] all CPUs follow\n[T2] Stack:\n[T2]  other_cpu_fn+0x1/0x2\n",
            "toy: oops in other_cpu_fn",
            id="after_open_after_every_context_belongs_to_the_report",
        ),
    ],
)
def test_the_fatal_report_is_titled_by_its_guilty_frame(toy: object, text: str, title: str) -> None:
    """Each case was a test of its own (its id says what it shows); one body: the fatal report's title."""
    obs = observe(toy, text)
    assert obs.fatal is not None and obs.fatal.title == title


def test_a_helper_titles_only_when_nothing_else_does(toy: object) -> None:
    with_caller = observe(toy, "OOPS\nStack:\n memcpy+0x1/0x2\n baz_copy+0x1/0x2\n")
    only_helpers = observe(toy, "OOPS\nStack:\n memcpy+0x1/0x2\n kmalloc+0x1/0x2\n")
    pc_only = observe(toy, "OOPS\nPC: memcpy+0x1/0x2\n")
    assert with_caller.fatal is not None and with_caller.fatal.title == "toy: oops in baz_copy"
    assert only_helpers.fatal is not None and only_helpers.fatal.title == "toy: oops in memcpy"
    assert pc_only.fatal is not None and pc_only.fatal.title == "toy: oops"  # a PC alone in a helper says nothing


def test_the_header_function_stands_when_its_stack_is_all_generic(toy: object) -> None:
    obs = observe(toy, "WARNING at memcpy\nStack:\n dump_stack+0x1/0x2\n")
    assert [i.title for i in obs.incidents] == ["toy: WARNING in memcpy"]


def test_an_anchor_frame_titles_a_hang_under_its_group_title(toy: object) -> None:
    obs = observe(toy, "HANG\nStack:\n wait_thing+0x1/0x2\n synchronize_srcu+0x1/0x2\n caller+0x1/0x2\n")
    assert [i.title for i in obs.incidents] == ["toy: hang in synchronize_rcu"]


def test_a_new_report_cuts_short_one_still_waiting_for_its_stack(toy: object) -> None:
    obs = observe(toy, "WARNING at memcpy\nOOPS\nStack:\n victim_fn+0x1/0x2\n")
    assert [i.title for i in obs.incidents] == ["toy: WARNING in memcpy"]  # not victim_fn: that stack is the oops'
    assert obs.fatal is not None and obs.fatal.title == "toy: oops in victim_fn"


# ---------------------------------------------------------------- prefilter and titles


@pytest.mark.parametrize(
    ("regex", "want"),
    [
        ("Kernel panic - not syncing: (?P<r>.*)", {"Kernel panic - not syncing: "}),
        ("BUG: (?:foo|barbaz) happened", {" happened"}),  # the surest: its shortest literal is longest
        ("(?:BUG|WARNING): bad (?:thing|stuff)", {": bad "}),
        ("(?:BUG|WARNING): (?:thing|stuff)", {"thing", "stuff"}),
        ("(?:BUG|WARNING): (?:x|y)", {"BUG", "WARNING"}),
        ("(?:Internal error: )?Oops: [0-9a-f]+", {"Oops: "}),
        ("(?P<t>invalid opcode|stack segment): [0-9a-f]{4}", {"invalid opcode", "stack segment"}),
        ("(?:^|\\s)[\\w.-]+ login: ?$", {" login:"}),
        ("(?i)kernel panic", None),
        ("[a-z]+\\d+", None),
        ("foo|\\d+", None),
    ],
)
def test_required_literals(regex: str, want: set[str] | None) -> None:
    found = required_literals(regex)
    assert (set(found) if found is not None else None) == want
    if found:  # every match of the regex holds one of them
        for sample in ("x BUG: foo happened", "WARNING: bad stuff", "[1] Kernel panic - not syncing: x", "a login: "):
            assert re.search(regex, sample) is None or any(x in sample for x in found)


def test_the_prefilter_keeps_regexes_without_literals() -> None:
    pf = Prefilter.of(["PANIC: (?P<r>.+)", "[a-z]+\\d+"])
    assert pf is not None
    assert pf.search("PANIC: now") and pf.search("abc123") and not pf.search("nothing here")


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("in ip6_fragment+0x1052/0x2d80", "in ip6_fragment"),
        ("in __call_rcu.constprop.76", "in __call_rcu"),
        ("in foo.isra.0.cold", "in foo"),
        ("at file.part of it", "at file.part of it"),
        ("in evdev_pass_values.part.0+0xf6/0x970", "in evdev_pass_values"),
    ],
)
def test_titles_drop_offsets_and_compiler_suffixes(raw: str, want: str) -> None:
    assert normalise_title(raw) == want


# ---------------------------------------------------------------- pack errors


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('frame_anchor = ["dispatch"]', 'frame_anchor = ["nope"]'), "names frame group 'nope'"),
        (("helper = true", "helper = true\nskip_always = true"), "both skip_always and helper"),
        (('frame = true\nframe_pick = "anchor"', 'frame_pick = "anchor"'), "sets frame_\\* options but not frame"),
        (('frame_anchor = ["rcu-sync"]\n', ""), "has frame_pick = 'anchor' but no frame_anchor"),
        (('cause_window = 50\ncause_kinds = ["warning"]', 'cause_kinds = ["warning"]'), "cause_kinds but not"),
        (("regex = '\\[(?P<context>T\\d+)\\]'", "regex = '\\[T\\d+\\]'"), "context regex needs"),
    ],
)
def test_bad_frame_options_are_one_line_usage_errors(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in PACK
    path = tmp_path / "toy.toml"
    path.write_text(PACK.replace(old, new, 1))
    with pytest.raises(UsageError) as err:
        compile_packs([read_pack_file(path)])
    assert re.search(message, str(err.value)) and "\n" not in str(err.value)


def test_a_project_pack_extends_the_frame_groups(tmp_path: Path) -> None:
    """A project's packs/linux.toml with extends = "linux" adds a generic helper of its own (no Python)."""
    from bootlab.packs.loader import load_packs

    (tmp_path / "packs").mkdir()
    (tmp_path / "packs" / "linux.toml").write_text(
        'extends = "linux"\ndescription = "linux with our vendor helpers"\nreference = "ours"\n\n'
        '[[frames.group]]\nname = "vendor"\nskip_always = true\nregex = ["^vendor_checked_copy$"]\n'
        'reference = "our tree: a checked copy that reports its callers\' bugs"\n'
    )
    log = (
        "[    1.0] BUG: unable to handle page fault for address: ffffc90000a1b000\n"
        "[    1.1] RIP: 0010:vendor_checked_copy+0x1a/0x40\n"
        "[    1.2] Call Trace:\n"
        "[    1.3]  <TASK>\n"
        "[    1.4]  vendor_read_config+0x51/0x90\n"
    )
    ours = classify_text(log, load_packs(["linux"], tmp_path))
    shipped = classify_text(log, load_packs(["linux"]))
    assert ours.title == "linux: BUG: unable to handle kernel paging request in vendor_read_config"
    assert shipped.title == "linux: BUG: unable to handle kernel paging request in vendor_checked_copy"
