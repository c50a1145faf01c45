"""The observer, replayed: partial-line prompts, split escapes and UTF-8, interactions, findings, bounded memory."""

from __future__ import annotations

import tracemalloc

import pytest

from bootlab.console.clean import clean, clean_partial
from bootlab.console.observer import Observer
from bootlab.packs.loader import load_packs


def redox() -> Observer:
    return Observer(load_packs(["redox"]), variables={"user": "root", "password": "password"})


def test_clean_strips_ansi_cr_nul_keeps_text() -> None:
    assert clean("\x1b[1mredox login:\x1b[0m \r\x00") == "redox login: "
    assert clean("a\tb\x1b]0;title\x07c") == "a\tbc"


def test_unfinished_escape_is_held_back_on_a_partial_line() -> None:
    assert clean_partial("redox login:\x1b[0") == "redox login:"


def test_login_prompt_without_newline_is_ready_and_answered_once() -> None:
    obs = redox()
    actions = obs.feed(b"\x1b[1mredox login:\x1b[0m ", 3.0)
    assert obs.ready and obs.ready_t == 3.0
    assert [a.send for a in actions] == ["root\n"]
    # the same line completing (the guest echoes what we typed) must not answer again
    assert obs.feed(b"root\n", 3.1) == []
    assert obs.stage == "login"


def test_prompt_split_across_reads_and_escape_split_across_reads() -> None:
    obs = redox()
    assert obs.feed(b"\x1b[1mredox lo", 1.0) == []
    actions = obs.feed(b"gin:\x1b", 1.1) + obs.feed(b"[0m ", 1.2) + obs.feed(b"root\n", 1.3)
    assert [a.interaction for a in actions] == ["redox-login"]


def test_invalid_and_split_utf8_is_tolerated() -> None:
    obs = redox()
    euro = "€".encode()
    obs.feed(b"\xff\xfe garbage " + euro[:1], 0.1)
    obs.feed(euro[1:] + b" Redox OS Bootloader 1.0.0 on aarch64/UEFI\n", 0.2)
    assert obs.stage == "bootloader"


def test_menu_interaction_sends_enter_after_its_delay() -> None:
    obs = redox()
    actions = obs.feed(b"Arrow keys and enter select mode\n", 2.0)
    assert [(a.send, a.delay) for a in actions] == [("\r", 0.2)]


def test_interaction_respects_max() -> None:
    obs = redox()
    sent = []
    for i in range(6):
        sent += obs.feed(b"redox login: ", float(i))
        obs.feed(b"\nLogin incorrect\n", float(i))
    assert len([a for a in sent if a.interaction == "redox-login"]) == 3


def test_interaction_with_missing_var_is_skipped() -> None:
    obs = Observer(load_packs(["redox"]), variables={"user": "root"})
    obs.vars.pop("password")
    assert obs.feed(b"password: ", 1.0) == []


def test_milestones_only_move_forward() -> None:
    obs = redox()
    obs.feed(b"kernel::arch::aarch64::start:INFO -- Redox OS starting...\n", 1.0)
    obs.feed(b"Redox OS Bootloader 1.0.0 on aarch64/UEFI\n", 2.0)  # a replayed earlier stage
    assert [s.name for s in obs.stages] == ["kernel"]


def test_wait_for_shell_ignores_login_prompt() -> None:
    obs = Observer(load_packs(["redox"]), wait_for_shell=True)
    obs.feed(b"redox login: ", 1.0)
    assert not obs.ready
    obs.feed(b"root\npassword: \n\nWelcome to Redox OS!\n\nroot:/# ", 2.0)
    assert obs.ready and obs.ready_t == 2.0


def test_process_death_is_an_incident_but_init_death_is_fatal() -> None:
    daemon = redox()
    daemon.feed(b"kernel::context::signal:INFO -- UNHANDLED EXCEPTION, CPU #0, PID 5, NAME /bin/nulld, CONTEXT 0x1\n")
    daemon.finish()
    assert daemon.fatal is None
    assert [(i.kind, i.process) for i in daemon.incidents] == [("process-exception", "nulld")]

    init = redox()
    init.feed(b"kernel::context::signal:INFO -- UNHANDLED EXCEPTION, CPU #0, PID 1, NAME [bootstrap], CONTEXT 0x1\n")
    assert init.fatal is not None
    assert init.fatal.kind == "init-died"
    assert init.fatal.title == "redox: UNHANDLED EXCEPTION in [bootstrap]"


def test_look_back_names_the_process_from_the_line_before_the_fault() -> None:
    """2016 Redox kernels print 'PID N: name' and then the fault (redox pack, look_back = 1)."""
    obs = redox()
    obs.feed(b"PID 3: file:/apps/login/main.bin\n  INT E: Page fault\n    ERR: 00000004\n", 1.0)
    obs.feed(b"PID 9: file:/bin/ion\n  INT D: General protection fault\n", 2.0)
    obs.finish()
    assert [(i.title, i.process, i.t) for i in obs.incidents] == [
        ("redox: Page fault in login", "login", 1.0),
        ("redox: General protection fault in ion", "ion", 2.0),
    ]


def test_look_back_sees_only_its_window_and_lines_already_seen() -> None:
    obs = redox()
    # a PID line two lines before is outside look_back = 1; the line after the fault never counts
    obs.feed(b"PID 3: file:/apps/login/main.bin\nsomething else\n  INT E: Page fault\nPID 4: file:/bin/sh\n")
    obs.finish()
    assert [(i.title, i.process) for i in obs.incidents] == [("redox: Page fault", None)]


def test_abridged_unhandled_exception_line_is_recognised_but_prose_is_not() -> None:
    obs = redox()
    obs.feed(b"kernel::context::signal:INFO -- UNHANDLED EXCEPTION ... NAME /usr/bin/cat\n")
    obs.feed(b"we saw UNHANDLED EXCEPTION... twice before the fix\n")
    obs.finish()
    assert [(i.kind, i.process) for i in obs.incidents] == [("process-exception", "cat")]


def test_lacks_grant_takes_the_process_from_the_exception_after_the_dump() -> None:
    obs = redox()
    dump = "".join(f"X{i}: 0000000000000000\n" for i in range(31))
    text = (
        "kernel::context::memory:DEBUG -- Lacks grant\n"
        "kernel::arch::aarch64::interrupt::exception:ERROR -- FATAL: Not an SVC induced synchronous exception "
        "(ty=100100)\nFAR_EL1: 0x8\n" + dump + "kernel::context::signal:INFO -- UNHANDLED EXCEPTION, CPU #0, PID 2, "
        "NAME /scheme/initfs/bin/init, CONTEXT 0x1\n"
    )
    obs.feed(text.encode(), 4.0)
    assert obs.fatal is not None
    assert obs.fatal.title == "redox: Lacks grant in init"
    assert obs.fatal.line == "kernel::context::memory:DEBUG -- Lacks grant"
    assert obs.incidents == []  # the FATAL line is superseded, the exception line is a consequence


def test_title_waits_for_the_frame_and_dump_complete_reports_it() -> None:
    obs = Observer(load_packs(["linux"]))
    obs.feed(b"[ 2.1] Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008\n", 2.1)
    assert obs.fatal_seen and not obs.dump_complete and obs.fatal_t == 2.1
    obs.feed(b"[ 2.1] pc : tty_open+0x64/0x4c0\n", 2.2)
    assert obs.dump_complete
    assert obs.fatal is not None and obs.fatal.title.endswith("in tty_open")


def test_title_falls_back_when_the_log_ends_before_the_frame() -> None:
    obs = Observer(load_packs(["linux"]))
    obs.feed(b"BUG: kernel NULL pointer dereference, address: 0000000000000008\n", 1.0)
    obs.finish()
    assert obs.fatal is not None
    assert obs.fatal.title == "linux: BUG: unable to handle kernel NULL pointer dereference"


def test_first_fatal_wins_and_later_findings_are_consequences() -> None:
    obs = Observer(load_packs(["linux"]))
    obs.feed(b"kernel BUG at fs/buffer.c:1245!\nKernel panic - not syncing: Fatal exception\n")
    obs.feed(b"getty[91]: segfault at 8 ip 0 sp 0 error 4 in libc.so.6\n")
    obs.finish()
    assert obs.fatal is not None and obs.fatal.title == "linux: kernel BUG at fs/buffer.c:LINE"
    assert obs.incidents == []


def test_flood_keeps_memory_flat() -> None:
    """8 MB of output (lines, then one endless line) must not grow the observer."""
    obs = Observer(load_packs(["linux"]))
    line = b"bootlab-guest: flood 0123456789abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789\n"
    chunk = line * 640  # ~64 KiB
    obs.feed(chunk, 0.0)
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    for i in range(60):
        obs.feed(chunk, float(i))
    for i in range(60):
        obs.feed(b"x" * 65536, float(i))  # no newline at all
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert current - base < 256 * 1024
    assert peak - base < 2 * 1024 * 1024


@pytest.mark.parametrize(
    ("text", "n"),
    [
        (b"WARNING: CPU: 0 PID: 1 at mm/x.c:1 f+0x1/0x2\n" * 3000, 1000),
    ],
)
def test_incidents_are_capped(text: bytes, n: int) -> None:
    obs = Observer(load_packs(["linux"]))
    obs.feed(text)
    obs.finish()
    assert len(obs.incidents) == n
    assert obs.incidents_dropped == 3000 - n


def test_dump_end_or_reboot_banner_ends_the_dump() -> None:
    obs = Observer(load_packs(["linux"]))
    obs.feed(b"[ 1.2] Kernel panic - not syncing: sysrq triggered crash\n[ 1.2] Call trace:\n", 1.2)
    assert obs.fatal_seen and not obs.dump_ended
    obs.feed(b"[ 0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd083]\n", 1.5)  # panic=-1 reboot
    assert obs.dump_ended
    redox_obs = redox()
    redox_obs.feed(b"KERNEL PANIC: panicked at src/context/memory.rs:1139:57:\nCPU 0, CID 0x1\n")
    assert not redox_obs.dump_ended
    redox_obs.feed(b"HALT\n")
    assert redox_obs.dump_ended


def test_incidents_are_listed_in_the_order_they_happened() -> None:
    """A finding that waits for later lines (a Lacks grant waits for the exception line naming its process) is
    listed where it happened, before an incident that completed in the meantime."""
    obs = redox()
    obs.feed(b"kernel::context::memory:DEBUG -- Lacks grant\n", 1.0)
    obs.feed(b"nulld failed with exit status: 1\n", 2.0)
    obs.feed(b"kernel::context::signal:INFO -- UNHANDLED EXCEPTION, CPU #0, PID 5, NAME /bin/pcid, CONTEXT 0x1\n", 3.0)
    obs.finish()
    assert obs.fatal is None
    assert [(i.title, i.t) for i in obs.incidents] == [
        ("redox: Lacks grant in pcid", 1.0),
        ("redox: nulld failed with exit status", 2.0),
        ("redox: UNHANDLED EXCEPTION in pcid", 3.0),
    ]


def test_lacks_grant_protection_fault_and_init_dying_is_one_crash_without_consequences() -> None:
    """A Lacks grant in init ends the boot; the protection fault and daemon deaths that follow it are its
    consequences, not incidents of their own."""
    obs = redox()
    dump = "".join(f"X{i}: 0000000000000000\n" for i in range(31))
    obs.feed(
        (
            "kernel::context::memory:DEBUG -- Lacks grant\n" + dump + "kernel::context::signal:INFO -- UNHANDLED "
            "EXCEPTION, CPU #0, PID 1, NAME [bootstrap], CONTEXT 0x1\n"
            "Protection fault: 7FB at 1B:FFFFFF000014BAB2\n"
            "nulld failed with exit status: 1\n"
            "kernel::context::signal:INFO -- UNHANDLED EXCEPTION, CPU #0, PID 7, NAME /bin/pcid, CONTEXT 0x1\n"
        ).encode(),
        4.0,
    )
    obs.finish()
    assert obs.fatal is not None and obs.fatal.title == "redox: Lacks grant in [bootstrap]"
    assert obs.incidents == []


def test_a_boot_with_credentials_logs_in_and_is_ready_at_the_shell() -> None:
    from bootlab.console.observer import wants_shell

    linux, redox, edk2 = load_packs(["linux"]), load_packs(["redox"]), load_packs(["edk2"])
    assert not wants_shell(linux, {"user": "root", "password": ""})  # busybox guests: ready at `login:`
    assert wants_shell(linux, {"password": "bootlab"})
    assert wants_shell(redox, {})  # the redox pack's own root/password logs in
    assert not wants_shell(redox, {"user": "user", "password": ""})
    assert not wants_shell(linux, {"password": "x", "ready": "login"})
    assert wants_shell(linux, {"ready": "shell"})
    assert not wants_shell(edk2, {"password": "x"})  # no shell prompt to wait for


def test_a_refused_login_is_recorded_before_ready_only() -> None:
    packs = load_packs(["redox"])
    obs = Observer(packs, variables={"user": "root", "password": "wrong"}, wait_for_shell=True)
    actions = obs.feed(b"\x1b[1mredox login:\x1b[0m ", 1.0)
    assert [a.send for a in actions] == ["root\n"]
    assert [a.send for a in obs.feed(b"root\r\npassword: ", 1.5)] == ["wrong\n"]
    obs.feed(b"\r\nLogin incorrect\r\n", 2.0)
    assert obs.login_failed is not None and obs.login_failed.t == 2.0 and not obs.ready
    fields = obs.verdict_fields()
    assert (fields["title"], fields["fatal_line"], fields["fatal_t"]) == ("login failed", "Login incorrect", 2.0)
    # once ready (a VM with someone typing on its console), a refused login is nobody's verdict
    ok = Observer(packs, variables={"user": "root", "password": "password"}, wait_for_shell=True)
    ok.feed(b"redox login: root\r\npassword: \r\nWelcome to Redox OS!\r\nroot:/# ", 1.0)
    assert ok.ready
    ok.feed(b"login\r\nredox login: x\r\npassword: \r\nLogin incorrect\r\n", 3.0)
    assert ok.login_failed is None and ok.verdict_fields()["title"] is None
