"""bootlab's gdb remote-protocol client against a fake stub: framing edge cases, the target description,
threads and registers, errors, and the QMP commands that start and stop QEMU's stub (the same on TCG, KVM and
HVF; HVF itself is untested on real hardware)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_gdbstub import ANNEXES, HVF_REFUSAL, FakeQemu, FakeStub, le, rle

from bootlab.qemu.gdbstub import (
    GdbStub,
    GdbStubError,
    build_description,
    checksum,
    decode_body,
    decode_register,
    escape,
    frame,
    gdb_argv,
    gdbserver,
    gdbserver_command,
    has_gdbserver,
    parse_annex,
    parse_thread_id,
    private_socket_dir,
)

# what would resume, step, or change a guest: bootlab's reader must never send any of these
FORBIDDEN = ("D", "c", "C", "s", "S", "vCont", "M", "X", "G", "P", "Z", "z", "k", "R", "!")


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short private directory (unix socket paths are limited to ~104 bytes; pytest's tmp_path can be long)."""
    d = Path(tempfile.mkdtemp(prefix="bl-gdbt-", dir="/tmp"))
    yield d
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


def two_cpus() -> dict[str, dict[int, str]]:
    return {
        "p01.01": {97: le(0x44A7CC), 188: le(0x92000047), 223: le(0x11000), 93: le(0x0), 33: le(0x800003C5, 4)},
        "p01.02": {97: le(0xFFFF800008123450), 188: le(0x0), 223: le(0x0), 93: le(0x3C5), 33: "xxxxxxxx"},
    }


def session(stub: FakeStub, sock: Path, body: Any) -> Any:
    async def go() -> Any:
        await stub.start(sock)
        try:
            client = await GdbStub.connect(sock, timeout=2.0)
            async with client:
                return await body(client)
        finally:
            await stub.stop()

    return asyncio.run(go())


def assert_read_only(stub: FakeStub) -> None:
    for packet in stub.received:
        assert not packet.startswith(FORBIDDEN) or packet.startswith(("qSupported", "QStart")), packet


# ---------------------------------------------------------------------------------------------- framing
def test_checksum_and_frame() -> None:
    assert checksum(b"qSupported") == sum(b"qSupported") % 256
    assert frame(b"g") == b"$g#67"
    assert frame(b"a}b#c") == b"$a}]b}\x03c#" + f"{checksum(b'a}]b}' + bytes([3]) + b'c'):02x}".encode()


def test_escape_round_trip() -> None:
    data = bytes(range(256))
    assert decode_body(escape(data)) == data


def test_run_length_decoding() -> None:
    assert decode_body(b"0* ") == b"0000"  # the GDB manual's own example
    assert decode_body(rle(b"x" * 40 + b"yz")) == b"x" * 40 + b"yz"
    assert decode_body(b"ab") == b"ab"
    with pytest.raises(GdbStubError, match="run-length"):
        decode_body(b"a*\x10")


def test_escape_at_the_end_is_an_error() -> None:
    with pytest.raises(GdbStubError, match="escape"):
        decode_body(b"ab}")


def test_thread_ids() -> None:
    assert parse_thread_id("p01.02") == (1, 2)
    assert parse_thread_id("0a") == (None, 10)
    assert parse_thread_id("p1.-1") == (1, -1)
    with pytest.raises(GdbStubError):
        parse_thread_id("cpu0")


def test_register_values_are_little_endian_and_xx_is_unavailable() -> None:
    assert decode_register("4500009200000000") == 0x92000045
    assert decode_register("xxxxxxxx") is None
    with pytest.raises(GdbStubError):
        decode_register("123")


# ---------------------------------------------------------------------------------------------- descriptions
def test_annex_with_undeclared_xi_prefix_parses() -> None:
    annex = parse_annex(ANNEXES["target.xml"])
    assert annex.architecture == "aarch64"
    assert annex.includes == ["aarch64-core.xml", "system-registers.xml"]


def test_register_numbers_follow_gdb_rules() -> None:
    desc = build_description(ANNEXES)
    assert desc.architecture == "aarch64"
    assert (desc.find("x0").regnum, desc.find("pc").regnum, desc.find("cpsr").regnum) == (0, 32, 33)  # type: ignore[union-attr]
    esr = desc.find("ESR_EL1")
    assert esr is not None and (esr.regnum, esr.bitsize, esr.feature) == (188, 64, "org.qemu.gdb.arm.sys.regs")
    assert desc.find("esr_el1") == esr  # case-insensitive fallback
    # implicit numbering continues after an explicit regnum
    desc2 = build_description(
        {
            "target.xml": '<target><feature name="f"><reg name="a" bitsize="8" regnum="5"/><reg name="b" bitsize="8"/>'
            "</feature></target>"
        }
    )
    assert desc2.find("b").regnum == 6  # type: ignore[union-attr]


def test_missing_annex_and_bad_xml_are_errors() -> None:
    with pytest.raises(GdbStubError, match="did not send"):
        build_description({"target.xml": '<target><xi:include href="nope.xml"/></target>'})
    with pytest.raises(GdbStubError, match="not XML"):
        parse_annex("<target><feature>")


# ---------------------------------------------------------------------------------------------- a whole session
@pytest.mark.parametrize("no_ack", [False, True], ids=["ack-mode", "no-ack-mode"])
@pytest.mark.parametrize("use_rle", [False, True], ids=["plain", "run-length"])
def test_reads_registers_by_name_on_each_vcpu(sockdir: Path, no_ack: bool, use_rle: bool) -> None:
    stub = FakeStub(ANNEXES, ["p01.01", "p01.02"], two_cpus(), offer_no_ack=no_ack, use_rle=use_rle, chunk=37)

    async def body(c: GdbStub) -> Any:
        desc = await c.target_description()
        out = []
        for pid, tid in await c.threads():
            await c.select_thread(pid, tid)
            out.append(await c.read_named(["ELR_EL1", "ESR_EL1", "FAR_EL1", "cpsr", "NOPE_EL9"]))
        return desc, c.ack_mode, out

    desc, ack_mode, values = session(stub, sockdir / "s", body)
    assert ack_mode is (not no_ack)
    assert len(desc.registers) == 38
    assert values[0] == {"ELR_EL1": 0x44A7CC, "ESR_EL1": 0x92000047, "FAR_EL1": 0x11000, "cpsr": 0x800003C5}
    assert values[1]["ELR_EL1"] == 0xFFFF800008123450 and values[1]["cpsr"] is None  # "xx": unavailable
    assert "Hgp1.2" in stub.received
    assert_read_only(stub)


def test_bad_checksum_is_retransmitted_in_ack_mode(sockdir: Path) -> None:
    stub = FakeStub(ANNEXES, ["p01.01"], two_cpus(), corrupt_first_reply=True)

    async def body(c: GdbStub) -> Any:
        return await c.threads()

    assert session(stub, sockdir / "s", body) == [(1, 1)]
    assert stub.naks == 1


def test_e_reply_is_an_error_with_the_code(sockdir: Path) -> None:
    stub = FakeStub(ANNEXES, ["p01.01"], two_cpus())

    async def body(c: GdbStub) -> Any:
        with pytest.raises(GdbStubError, match="E14"):
            await c.read_register(7)  # not in the fake's table: QEMU answers E14 for such numbers
        with pytest.raises(GdbStubError, match="E22"):
            await c.select_thread(1, 9)
        return True

    assert session(stub, sockdir / "s", body)


def test_g_is_used_when_p_is_not_supported(sockdir: Path) -> None:
    block = "".join(le(i) for i in range(33)) + le(0x3C5, 4)  # x0..x30, sp, pc, cpsr
    stub = FakeStub(ANNEXES, ["p01.01"], two_cpus(), support_p=False, g_blocks={"p01.01": block})

    async def body(c: GdbStub) -> Any:
        return await c.read_named(["x3", "pc", "cpsr", "ESR_EL1"])

    # ESR_EL1 is outside g's block: it cannot be read that way and is left out
    assert session(stub, sockdir / "s", body) == {"x3": 3, "pc": 32, "cpsr": 0x3C5}


def test_a_silent_stub_times_out(sockdir: Path) -> None:
    sock = sockdir / "s"

    async def go() -> None:
        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(4096)
            await asyncio.sleep(5)

        server = await asyncio.start_unix_server(mute, path=str(sock))
        try:
            with pytest.raises(GdbStubError, match="did not answer"):
                await GdbStub.connect(sock, timeout=0.3)
        finally:
            server.close()

    asyncio.run(go())


def test_connecting_to_nothing_is_one_clear_error(sockdir: Path) -> None:
    with pytest.raises(GdbStubError, match="cannot connect to the gdb stub"):
        asyncio.run(GdbStub.connect(sockdir / "absent", timeout=0.5))


# ---------------------------------------------------------------------------------------------- QMP side
def test_gdbserver_commands(sockdir: Path) -> None:
    qmp = FakeQemu(None)

    async def go() -> None:
        async with gdbserver(qmp, sockdir / "gdb.sock") as path:
            assert path == sockdir / "gdb.sock"
        with pytest.raises(RuntimeError):
            async with gdbserver(qmp, sockdir / "gdb.sock"):
                raise RuntimeError("the body failed")

    asyncio.run(go())
    start = f"gdbserver unix:{sockdir}/gdb.sock,server=on,wait=off"
    assert qmp.lines == [start, "gdbserver none", start, "gdbserver none"]  # stopped even when the body fails


def test_gdbserver_command_quoting() -> None:
    assert gdbserver_command(None) == "gdbserver none"
    assert gdbserver_command(Path("/tmp/a,b/gdb.sock")) == "gdbserver unix:/tmp/a,,b/gdb.sock,server=on,wait=off"
    with pytest.raises(GdbStubError, match="spaces"):
        gdbserver_command(Path("/tmp/a b/gdb.sock"))


def test_a_refusing_qemu_is_one_clear_error_and_nothing_to_stop(sockdir: Path) -> None:
    qmp = FakeQemu(None, refuse=HVF_REFUSAL)

    async def go() -> None:
        async with gdbserver(qmp, sockdir / "gdb.sock"):
            raise AssertionError("not reached")

    with pytest.raises(GdbStubError, match="did not start its gdb stub: gdbstub: current accelerator doesn't"):
        asyncio.run(go())
    assert qmp.lines == [f"gdbserver unix:{sockdir}/gdb.sock,server=on,wait=off"]


def test_existing_stub_is_detected_from_info_chardev() -> None:
    # as QEMU 7.2 and 10.0 print them: the stub's chardev is labelled "gdb"; its internal monitor "#chrNN"
    with_stub = "#chr014: filename=gdb\ngdb: filename=disconnected:tcp:0.0.0.0:1234,server=on\nserial0: filename=x\n"
    without = "#chr014: filename=gdb\nparallel0: filename=vc\ncompat_monitor0: filename=unix:/q.sock,server=on\n"
    assert asyncio.run(has_gdbserver(FakeQemu(None, chardevs=with_stub))) is True
    assert asyncio.run(has_gdbserver(FakeQemu(None, chardevs=without))) is False


def test_socket_directory_must_be_private(sockdir: Path) -> None:
    private_socket_dir(sockdir)  # mkdtemp: 0700
    os.chmod(sockdir, 0o755)
    try:
        with pytest.raises(GdbStubError, match="0700"):
            private_socket_dir(sockdir)
    finally:
        os.chmod(sockdir, 0o700)


def test_gdb_command_lines() -> None:
    sock = Path("/tmp/x/gdb.sock")
    assert gdb_argv("gdb-multiarch", sock, symbols="vmlinux") == [
        "gdb-multiarch",
        "-nx",
        "-ex",
        "target remote /tmp/x/gdb.sock",
        "vmlinux",
    ]
    batch = gdb_argv("gdb-multiarch", sock, architecture="aarch64", batch=("bt", "info registers"))
    assert batch[:2] == ["gdb-multiarch", "-nx"] and "-batch" in batch
    ex = [batch[i + 1] for i, a in enumerate(batch) if a == "-ex"]
    # never a detach: QEMU resumes the guest on one
    assert ex == ["set architecture aarch64", "target remote /tmp/x/gdb.sock", "bt", "info registers", "disconnect"]
