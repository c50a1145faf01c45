"""BootClock: the hang, timeout and crash-grace limits shared by `bootlab boot` and the VM supervisor."""

from __future__ import annotations

from bootlab.console.clock import BootClock
from bootlab.console.observer import Observer
from bootlab.packs.loader import load_packs


def observer() -> Observer:
    return Observer(load_packs(["linux"]), variables={"user": "root", "password": ""})


def test_quiet_guest_is_a_hang_and_the_overall_limit_a_timeout() -> None:
    clock = BootClock(timeout=100, quiet_timeout=10, start=0)
    assert clock.wait(0) == 10
    assert clock.expired(10) == "hang"
    assert clock.wait(95) == 0  # the hang limit passed too; whichever ran out first is asked by expired()
    assert clock.expired(100) == "timeout"


def test_output_without_progress_is_a_hang_after_twice_quiet_timeout() -> None:
    clock = BootClock(timeout=100, quiet_timeout=10, start=0)
    obs = observer()
    obs.feed(b"[ 1.01] noise noise noise\n", 1)
    assert clock.observe(1, obs).progressed  # a line not seen before
    for t in range(2, 20):
        obs.feed(f"[ {t}.0{t}] noise noise noise\n".encode(), t)  # the same line; only its numbers change
        assert not clock.observe(t, obs).progressed
    assert clock.wait(19) == 2  # 2 * quiet_timeout after the last progress, not 10 s after the last output
    assert clock.expired(21) == "hang" and clock.rule == "no-progress"
    stopped = clock.stopped(obs, 21)
    assert stopped.rule == "no-progress" and stopped.flowing and stopped.lines_since_progress == 18
    assert stopped.last_lines[-1] == "[ 19.019] noise noise noise"


def test_a_flood_that_differs_only_in_addresses_is_no_progress() -> None:
    """A driver repeating one error with a new pointer each time ('at ffff8881...a1c0', 'cookie 0xffffb2...') is
    stuck, not booting: its hex tokens vary like numbers do."""
    clock = BootClock(timeout=100, quiet_timeout=10, start=0)
    obs = observer()
    for t in range(1, 25):
        addr = 0xFFFF888100A1C000 + t * 0xB2C0
        obs.feed(f"[ {t}.0] virtio_blk: bad descriptor at {addr:x} (cookie 0x{addr ^ 0xDEAD:x})\n".encode(), t)
        clock.observe(t, obs)
    assert clock.wait(24) == 0 and clock.expired(24) == "hang" and clock.rule == "no-progress"
    assert clock.stopped(obs, 24).lines_since_progress == 23


def test_names_that_end_in_a_number_stay_distinct() -> None:
    """Only whole hex tokens vary: 'vda1' and 'vdb1' are two devices found, not one line repeated."""
    obs = observer()
    obs.feed(b"Found device /dev/vda1\nFound device /dev/vdb1\nFound device /dev/vdb1\n", 1)
    assert obs.distinct_lines == 2


def test_new_distinct_lines_are_progress_without_a_milestone() -> None:
    """A slow systemd boot prints one status line after another for a minute between milestones: alive."""
    clock = BootClock(timeout=1000, quiet_timeout=10, start=0)
    obs = observer()
    for t in range(1, 100):
        obs.feed(f"[  OK  ] Started unit-{chr(97 + t % 26)}{chr(97 + t // 26)}.service\n".encode(), t)
        assert clock.observe(t, obs).progressed
    assert clock.wait(99) == 10  # only the quiet limit is near
    assert clock.expired(109) == "hang" and clock.rule == "quiet"
    assert not clock.stopped(obs, 109).flowing


def test_a_quiet_console_stopped_on_a_prompt_says_so() -> None:
    clock = BootClock(timeout=100, quiet_timeout=10, start=0)
    obs = observer()
    obs.feed(b"Install the boot loader?\nContinue? [y/N] ", 3)
    clock.observe(3, obs)
    assert clock.expired(13) == "hang"
    stopped = clock.stopped(obs, 13)
    assert stopped.rule == "quiet" and stopped.prompt == "Continue? [y/N]" and stopped.silent_s == 10
    # the same text followed by a newline is not waiting on that line any more
    obs.feed(b"\n", 4)
    assert clock.stopped(obs, 14).prompt is None


def test_progress_resets_the_progress_clock_and_reports_new_stages() -> None:
    clock = BootClock(timeout=100, quiet_timeout=10, start=0)
    obs = observer()
    obs.feed(b"Booting Linux on physical CPU 0x0000000000 [0x410fd083]\n", 5)
    step = clock.observe(5, obs)
    assert step.progressed and [s.name for s in step.stages] == [s.name for s in obs.stages]
    assert clock.wait(5) == 10


def test_fatal_line_switches_to_the_dump_grace() -> None:
    clock = BootClock(timeout=100, quiet_timeout=10, start=0, grace=0.3, max_grace=2.0)
    obs = observer()
    obs.feed(b"Kernel panic - not syncing: sysrq triggered crash\n", 3.0)
    step = clock.observe(3.0, obs)
    assert step.fatal_new and clock.fatal_at == 3.0
    assert abs((clock.wait(3.0) or 0) - 0.3) < 1e-9
    for i in range(1, 30):  # a dump that keeps streaming is cut at max_grace
        clock.observe(3.0 + i * 0.1, obs)
    assert clock.wait(4.9) == 0.1 or abs((clock.wait(4.9) or 0) - 0.1) < 1e-9
    assert clock.expired(5.0) == "crash"
    assert not clock.observe(5.1, obs).fatal_new  # reported once


def test_ready_vm_is_not_timed_and_ignores_fatal_when_told() -> None:
    clock = BootClock(timeout=100, quiet_timeout=10, start=0)
    assert clock.wait(50, booting=False) is None
    obs = observer()
    obs.feed(b"Kernel panic - not syncing: x\n", 1)
    assert not clock.observe(1, obs, watch_fatal=False).fatal_new and clock.fatal_at is None
