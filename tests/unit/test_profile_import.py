"""`bootlab profiles import`: command lines and run scripts -> profiles whose argv is the source's, option by option.

Round trips go through the real CLI, the real host probe and bootlab's own argv builder: the source command is
imported, the profile is written into bootlab.toml, read back by the loader and built again. Each test checks
the built argv itself (independently of the import's own comparison) and that the comparison found no
difference.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bootlab.cli.main import main
from bootlab.host import probe
from bootlab.qemu.parts import dissect
from prereq import requires

ROOT = Path(__file__).resolve().parents[2]
GUESTS = ROOT / "guests" / "bootlab.toml"

# The user's notes (shared/context/user-qemu-notes.md): HVF with the host CPU...
USER_HVF = (
    "qemu-system-aarch64 -M virt -accel hvf -cpu host -m 2G "
    "-bios tools/firmware/edk2-aarch64-code.fd "
    "-drive file=pure-rust.img,format=raw,id=disk0,if=none "
    "-device virtio-blk-pci,drive=disk0 "
    "-nographic"
)
# ... and the cortex-a72 fallback of run-backup.sh ("NEVER MODIFY"): same machine under TCG (QEMU's default).
USER_FALLBACK = USER_HVF.replace("-accel hvf -cpu host", "-cpu cortex-a72")

# What Redox's mk/qemu.mk prints for `make qemu` (ARCH=aarch64 on an x86_64 Linux host, so kvm=no; and
# ARCH=x86_64 with KVM), with its default disk=nvme, net=e1000 user networking, usb and gpu settings.
REDOX_AARCH64 = (
    "qemu-system-aarch64 -d guest_errors -name 'Redox OS aarch64' -device qemu-xhci -device usb-kbd "
    "-device usb-tablet -smp 1 -m 2048 -bios /usr/share/AAVMF/AAVMF_CODE.fd "
    "-chardev stdio,id=debug,signal=off,mux=on, -serial chardev:debug -mon chardev=debug -machine virt "
    "-device e1000,netdev=net0,id=nic0 -netdev user,id=net0 "
    "-object filter-dump,id=f1,netdev=net0,file=build/aarch64/desktop/network.pcap -vga none -device ramfb "
    "-drive file=build/aarch64/desktop/redox-live.iso,format=raw,if=none,id=drv0 "
    "-device nvme,drive=drv0,serial=NVME_SERIAL "
    "-drive file=build/aarch64/desktop/extra.img,format=raw,if=none,id=drv1 "
    "-device nvme,drive=drv1,serial=NVME_EXTRA -cpu max"
)
REDOX_X86_64 = (
    "qemu-system-x86_64 -d guest_errors -name 'Redox OS x86_64' -device qemu-xhci -smp 4 -m 2048 "
    "-bios /usr/share/ovmf/OVMF.fd -chardev stdio,id=debug,signal=off,mux=on, -serial chardev:debug "
    "-mon chardev=debug -machine q35 -device ich9-intel-hda -device hda-output "
    "-device e1000,netdev=net0,id=nic0 -netdev user,id=net0 "
    "-object filter-dump,id=f1,netdev=net0,file=build/x86_64/desktop/network.pcap -vga std "
    "-drive file=build/x86_64/desktop/harddrive.img,format=raw,if=none,id=drv0 "
    "-device nvme,drive=drv0,serial=NVME_SERIAL "
    "-drive file=build/x86_64/desktop/extra.img,format=raw,if=none,id=drv1 "
    "-device nvme,drive=drv1,serial=NVME_EXTRA -enable-kvm -cpu host"
)


def run_import(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["profiles", "import", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def assert_option_by_option(data: dict[str, Any], source: list[str], base: Path) -> None:
    """No row differs, and every option of the source is in exactly one row (nothing unaccounted for)."""
    assert data["exact"], [r for c in data["comparisons"] for r in c["rows"] if r["status"] == "differs"]
    rows = data["comparisons"][0]["rows"]
    assert all(r["status"] in ("same", "equal", "replaced") for r in rows)
    sources = " ".join(r["source"] for r in rows)
    for part in dissect(source, base).parts:
        if part.options:
            assert part.text in sources, part.text
    built = data["comparisons"][0]["argv"]
    profile_side = " ".join(r["profile"] for r in rows)
    for part in dissect(built, base).parts:
        assert part.text in profile_side, part.text


def test_user_hvf_line_round_trip(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_import(capsys, "hvf", "--", USER_HVF)
    assert code == 0
    assert data["table"] == {
        "arch": "aarch64", "machine": "virt", "accel": ["hvf"], "cpu": "host", "smp": 1, "memory": "2G",
        "firmware": {"bios": "tools/firmware/edk2-aarch64-code.fd"},
        "drives": [{"file": "pure-rust.img", "format": "raw", "interface": "virtio", "persistent": True}],
        "pack": ["edk2", "redox"],
    }  # fmt: skip
    # bootlab's builder gives back the same command (absolute paths, the defaults written out).
    assert data["comparisons"][0]["argv"] == [
        "qemu-system-aarch64", "-M", "virt", "-accel", "hvf", "-cpu", "host", "-smp", "1", "-m", "2G",
        "-bios", f"{project}/tools/firmware/edk2-aarch64-code.fd",
        "-drive", f"file={project}/pure-rust.img,format=raw,if=none,id=disk0", "-device", "virtio-blk-pci,drive=disk0",
        "-nographic",
    ]  # fmt: skip
    assert_option_by_option(data, shlex.split(USER_HVF), project)
    if "hvf" not in probe().accelerators.get("aarch64", []):
        assert "compared as if it were" in data["comparisons"][0]["note"]
    text = (project / "bootlab.toml").read_text()
    assert "# Imported by `bootlab profiles import` from the command line:" in text
    assert "the source writes this image" in text  # persistent = true is explained where it is written


def test_user_fallback_line_round_trip(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_import(capsys, "backup", "--", USER_FALLBACK)
    assert code == 0
    t = data["table"]
    assert (t["accel"], t["cpu"], t["memory"]) == (["tcg"], "cortex-a72", "2G")
    argv = data["comparisons"][0]["argv"]
    assert argv[:9] == ["qemu-system-aarch64", "-M", "virt", "-accel", "tcg", "-cpu", "cortex-a72", "-smp", "1"]
    accel_row = next(r for r in data["comparisons"][0]["rows"] if r["profile"] == "-accel tcg")
    assert accel_row == {"status": "equal", "source": "", "profile": "-accel tcg",
                         "note": "QEMU's default accelerator, written out"}  # fmt: skip
    assert_option_by_option(data, shlex.split(USER_FALLBACK), project)


def test_redox_qemu_mk_aarch64_round_trip(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_import(capsys, "redox", "--", REDOX_AARCH64)
    assert code == 0
    t = data["table"]
    assert t["drives"] == [
        {"file": "build/aarch64/desktop/redox-live.iso", "format": "raw", "interface": "nvme",
         "serial": "NVME_SERIAL", "persistent": True},
        {"file": "build/aarch64/desktop/extra.img", "format": "raw", "interface": "nvme",
         "serial": "NVME_EXTRA", "persistent": True},
    ]  # fmt: skip
    assert (t["machine"], t["cpu"], t["smp"], t["memory"], t["pack"]) == ("virt", "max", 1, "2G", ["edk2", "redox"])
    # everything with no field stays raw, in the source's order, with paths made absolute
    assert t["extra_args"] == [
        "-d", "guest_errors", "-name", "Redox OS aarch64", "-device", "qemu-xhci", "-device", "usb-kbd",
        "-device", "usb-tablet", "-device", "e1000,netdev=net0,id=nic0", "-netdev", "user,id=net0",
        "-object", f"filter-dump,id=f1,netdev=net0,file={project}/build/aarch64/desktop/network.pcap",
        "-vga", "none", "-device", "ramfb",
    ]  # fmt: skip
    assert "-netdev user,id=net0 -device e1000,netdev=net0,id=nic0" in data["kept"]
    assert_option_by_option(data, shlex.split(REDOX_AARCH64), project)
    plumbing = next(r for r in data["comparisons"][0]["rows"] if r["status"] == "replaced")
    assert plumbing["source"].startswith("-chardev stdio,id=debug") and plumbing["profile"] == "-nographic"
    assert "PCI addresses may differ" in data["comparisons"][0]["order"]


def test_redox_qemu_mk_x86_64_round_trip(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_import(capsys, "redox-x86", "--", REDOX_X86_64)
    assert code == 0
    t = data["table"]
    ovmf = probe().firmware.get("OVMF.fd") == "/usr/share/ovmf/OVMF.fd"
    assert t["firmware"] == {"bios": "OVMF.fd" if ovmf else "/usr/share/ovmf/OVMF.fd"}
    assert (t["machine"], t["accel"], t["cpu"], t["smp"], t["memory"]) == ("q35", ["kvm"], "host", 4, "2G")
    built = data["comparisons"][0]["argv"]
    assert built[built.index("-bios") + 1] == "/usr/share/ovmf/OVMF.fd"
    assert "-enable-kvm" not in built and built[built.index("-accel") + 1] == "kvm"
    assert_option_by_option(data, shlex.split(REDOX_X86_64), project)


@requires(GUESTS.is_file(), "test guests not built: run `bash guests/build.sh`")
@pytest.mark.parametrize("guest", ["linux-arm64", "linux-arm64-uefi", "linux-x86_64", "redox-sim", "debian-amd64"])
def test_exported_guest_script_round_trip(guest: str, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`bootlab script` -> `profiles import --script` -> `bootlab script` again: the very same argv."""
    script = project / "run.sh"
    assert main(["script", guest, "--config", str(GUESTS), "-o", str(script)]) == 0
    code, data = run_import(capsys, guest, "--script", str(script))
    assert code == 0 and data["source"]["label"] == f"{script} line 7"
    assert main(["script", guest, "-o", str(project / "again.sh")]) == 0
    capsys.readouterr()

    def argv(path: Path) -> list[str]:
        return shlex.split(path.read_text().split("exec ", 1)[1].replace("\\\n", " "))

    assert argv(project / "again.sh") == argv(script)
    assert_option_by_option(data, argv(script), project)


def test_lock_at_once(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The "NEVER MODIFY" script becomes a locked profile in one command, with the lock `bootlab lock` writes."""
    (project / "run-backup.sh").write_text(f'#!/bin/sh\n# our fallback config\nexec {USER_FALLBACK} "$@"\n')
    assert main(["profiles", "import", "backup", "--script", "run-backup.sh", "--lock"]) == 0
    assert "locked backup in" in capsys.readouterr().out
    assert json.loads((project / "bootlab.lock").read_text())["profiles"]["backup"]["argv"][0] == "qemu-system-aarch64"
    assert main(["lock", "backup"]) == 0
    assert "already locked, unchanged" in capsys.readouterr().out
    assert main(["script", "backup", "--set", "cpu=max"]) == 2
    # replacing a locked profile needs --lock (relock on purpose)
    assert main(["profiles", "import", "backup", "--replace", "--", USER_FALLBACK.replace("2G", "1G")]) == 2
    assert "is locked" in capsys.readouterr().err
    assert main(["profiles", "import", "backup", "--replace", "--lock", "--", USER_FALLBACK.replace("2G", "1G")]) == 0
    assert main(["script", "backup"]) == 0


def test_lock_refused_when_this_host_cannot_build(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if "hvf" in probe().accelerators.get("aarch64", []):
        pytest.skip("this host runs HVF")
    assert main(["profiles", "import", "hvf", "--lock", "--", USER_HVF]) == 1
    assert "not locked: this host cannot build" in capsys.readouterr().err
    assert not (project / "bootlab.lock").exists()


def test_existing_file_keeps_comments_and_formatting(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original = (
        "# Our lab.   Hand-written; keep this comment.\n"
        "[store]\npath = '.bootlab'    # single quotes and spacing stay\n\n"
        "[profiles.backup]   # the fallback\n"
        'extends = "redox-aarch64-tcg"\nvars = {  image = "build/x.img"  }\n'
    )
    (project / "bootlab.toml").write_text(original)
    assert main(["profiles", "import", "hvf", "--", USER_HVF]) == 0
    text = (project / "bootlab.toml").read_text()
    assert text.startswith(original)
    assert "[profiles.hvf]" in text[len(original) :]
    # an existing name is refused unless --replace, which replaces the table in place
    assert main(["profiles", "import", "backup", "--", USER_FALLBACK]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["profiles", "import", "backup", "--replace", "--", USER_FALLBACK]) == 0
    text = (project / "bootlab.toml").read_text()
    assert text.startswith("# Our lab.   Hand-written; keep this comment.\n[store]\npath = '.bootlab'    # single")
    assert "[profiles.backup]   # the fallback\n# Imported by" in text and "extends" not in text
    assert text.index("[profiles.backup]") < text.index("[profiles.hvf]")


def test_option_with_no_field_kept_and_listed(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = USER_FALLBACK + " -rtc base=utc,clock=vm -device virtio-rng-pci -drive file=cd.iso,media=cdrom,if=ide"
    assert main(["profiles", "import", "p", "--", line]) == 0
    out = capsys.readouterr().out
    assert "kept in extra_args (no profile field):\n" in out
    for option in ("-rtc base=utc,clock=vm", "-device virtio-rng-pci", "-drive file=cd.iso,media=cdrom,if=ide"):
        assert f"\n  {option}\n" in out
    code, data = run_import(capsys, "q", "--", line)
    assert code == 0
    assert data["table"]["extra_args"] == [
        "-rtc", "base=utc,clock=vm", "-device", "virtio-rng-pci", "-drive", f"file={project}/cd.iso,media=cdrom,if=ide"
    ]  # fmt: skip
    assert_option_by_option(data, shlex.split(line), project)


def test_defaults_written_out_and_snapshot_choices(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_import(capsys, "tiny", "--", "qemu-system-x86_64 -hda disk.img -snapshot")
    assert code == 0
    t = data["table"]
    assert (t["machine"], t["accel"], t["cpu"], t["smp"], t["memory"]) == ("pc", ["tcg"], "qemu64", 1, "128M")
    assert t["extra_args"] == ["-hda", f"{project}/disk.img", "-snapshot"]
    assert_option_by_option(data, ["qemu-system-x86_64", "-hda", "disk.img", "-snapshot"], project)
    # a drive the source writes: persistent by default, a snapshot with --snapshot (reported as replaced)
    line = "qemu-system-aarch64 -M virt -cpu max -drive file=d.img,if=virtio,format=raw -nographic"
    code, data = run_import(capsys, "w", "--", line)
    assert data["table"]["drives"] == [{"file": "d.img", "format": "raw", "interface": "virtio", "persistent": True}]
    code, data = run_import(capsys, "s", "--snapshot", "--", line)
    assert code == 0 and data["table"]["drives"] == [{"file": "d.img", "format": "raw", "interface": "virtio"}]
    disk = next(r for r in data["comparisons"][0]["rows"] if r["source"].startswith("-drive"))
    assert disk["status"] == "replaced" and "snapshot" in disk["note"]


def test_shares_network_forwards_pflash(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "share").mkdir()
    host = probe()
    code_fd = host.pflash.get("edk2-aarch64-code.fd") or "/usr/share/AAVMF/AAVMF_CODE.fd"
    line = (
        "qemu-system-aarch64 -M virt,highmem=off -accel kvm -accel tcg -cpu max -smp 2 -m 1G "
        f"-drive if=pflash,format=raw,unit=0,file={code_fd},readonly=on "
        "-drive if=pflash,format=raw,unit=1,file=vars.fd "
        "-fsdev local,id=host0,path=share,security_model=none -device virtio-9p-pci,fsdev=host0,mount_tag=hostshare "
        "-netdev user,id=n,hostfwd=tcp::2222-:22,hostfwd=udp:127.0.0.1:5353-:53 -device virtio-net-pci,netdev=n "
        "-kernel vmlinuz -append 'console=ttyAMA0 {literal}' -serial mon:stdio -display none"
    )
    code, data = run_import(capsys, "full", "--", line)
    assert code == 0
    t = data["table"]
    assert t["machine"] == {"type": "virt", "highmem": "off"} and t["accel"] == ["kvm", "tcg"]
    assert t["firmware"]["vars"] == "vars.fd"
    assert t["shares"] == [{"path": "share", "tag": "hostshare"}]
    assert (t["network"], t["forwards"]) == (True, ["2222:22", "5353:53/udp"])
    assert t["append"] == "console=ttyAMA0 {{literal}}"  # a template: literal braces doubled
    assert t["pack"][-1] == "linux"
    rows = {r["status"] for r in data["comparisons"][0]["rows"]}
    assert "replaced" in rows
    notes = " ".join(r["note"] for r in data["comparisons"][0]["rows"])
    assert "vars store on a snapshot" in notes and "127.0.0.1" in notes
    assert_option_by_option(data, shlex.split(line), project)


def test_extends_writes_only_the_difference(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "import", "dev", "--", USER_FALLBACK]) == 0
    capsys.readouterr()
    code, data = run_import(
        capsys, "dev-gui", "--extends", "dev", "--", USER_FALLBACK.replace("-nographic", "-vga std")
    )
    assert code == 0
    assert data["table"] == {"extends": "dev", "extra_args": ["-vga", "std"]}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--", "qemu-system-aarch64", "-M", "virt", "-smp", "abc"], "-smp abc (cpus): expected a whole number"),
        (["--", "qemu-system-aarch64", "-M", "virt", "-m", "lots"], "-m lots: expected a size"),
        (["--", "qemu-system-aarch64", "-M", "virt", "-drive", "file=x,readonly=maybe"], "expected on or off"),
        (["--", "qemu-system-aarch64", "-M", "virt", "-m"], "-m: missing its value"),
        (["--", "qemu-system-aarch64", "-M", "virt", "-accel", "nvmm"], "-accel nvmm: bootlab profiles know"),
        (["--", "qemu-system-aarch64", "-cpu", "max"], "no -M/-machine"),
        (["--", "qemu-system-mips", "-M", "malta"], "not mips"),
        (["--", "ls", "-l"], "does not start with qemu-system-ARCH"),
        (["--", "qemu-system-aarch64 -append 'unclosed"], "cannot read the command line"),
        ([], "nothing to import"),
        (["--mode", "gui", "--", "qemu-system-aarch64"], "--mode and --env are for --script"),
        (["--script", "/nonexistent/run.sh"], "cannot read"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    args: list[str], needle: str, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["profiles", "import", "p", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (project / "bootlab.toml").exists()


def test_bad_name_and_subprocess_exit_code(project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bootlab", "profiles", "import", "a b", "--", USER_HVF],
        capture_output=True, text=True, cwd=project, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "profile name 'a b'" in result.stderr


def test_profiles_show_still_works(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "redox-aarch64-tcg", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cpu"] == "cortex-a72"
    assert main(["profiles", "show", "redox-aarch64-tcg", "--set", "cpu=max"]) == 0
    assert json.loads(capsys.readouterr().out)["cpu"] == "max"


def test_a_script_with_modes_imports_as_profiles_that_extend_one(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's recipe on a run script like the user's (a `case` over modes, the accelerator picked by host):
    the default mode as one profile, with the accelerators of both branches and a cpu per accelerator; another
    mode as a profile that extends it and writes only what differs."""
    from test_script_reader import RUN_DEV

    (project / "run-dev.sh").write_text(RUN_DEV)
    code, data = run_import(capsys, "redox", "--script", "run-dev.sh")
    assert code == 0, data
    table = data["table"]
    assert (table["accel"], table["cpu"]) == (["hvf", "tcg"], {"hvf": "host", "tcg": "cortex-a72"})
    assert len(data["comparisons"]) == 2 and data["exact"]
    code, gui = run_import(capsys, "redox-gui", "--script", "run-dev.sh", "--mode", "gui", "--extends", "redox")
    assert code == 0, gui
    assert gui["table"] == {"extends": "redox"}  # -serial stdio is what -nographic gives the console: nothing differs
    text = (project / "bootlab.toml").read_text()
    assert "[profiles.redox]" in text and "[profiles.redox-gui]" in text
