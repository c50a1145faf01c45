"""`bootlab lint` through the real entry point: output shapes and exit codes (0 clean, 1 error, 2 bad input)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bootlab.cli.main import main
from prereq import need

GOOD = [
    "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-m", "2G", "-bios", "edk2-aarch64-code.fd",
    "-drive", "file=x.img,format=raw,id=disk0,if=none,snapshot=on", "-device", "virtio-blk-pci,drive=disk0",
    "-nographic",
]  # fmt: skip
BAD = ["qemu-system-aarch64", "-M", "virt,highmem=off", "-cpu", "host", "-m", "4G"]


def test_json_shape_and_exit_1_on_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "--no-host", "--json", "--", *BAD]) == 1
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, list) and data
    for item in data:
        assert {"id", "severity", "message", "reference", "fix"} <= set(item)
        assert item["severity"] in {"error", "warning", "info"}
    ids = {item["id"] for item in data}
    assert {"cpu-host-tcg", "virt-highmem-ram", "virt-nothing-to-boot"} <= ids


def test_clean_command_line_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "--no-host", "--json", "--", *GOOD]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_warnings_only_exit_0_and_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.replace("format=raw,", "") for a in GOOD]
    assert main(["lint", "--no-host", "--", *argv]) == 0
    out = capsys.readouterr().out
    assert out.startswith("warning drive-format-probed: drive x.img")
    assert "fix: add format=raw" in out


def test_writing_the_image_is_a_warning_on_a_pasted_line(capsys: pytest.CaptureFixture[str]) -> None:
    """The user's own run script writes its image: lint says the risk but does not fail it (issue 9)."""
    argv = [a.replace(",snapshot=on", "") for a in GOOD]
    assert main(["lint", "--no-host", "--", *argv]) == 0
    out = capsys.readouterr().out
    assert out.startswith("warning drive-writes-image: drive x.img runs without snapshot")
    assert "fix: add snapshot=on" in out


def test_one_pasted_string(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "--no-host", "--json", "--", " ".join(BAD)]) == 1
    assert json.loads(capsys.readouterr().out)


def test_script_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "run-backup.sh"
    script.write_text("#!/bin/sh\n# fallback\nIMG=x.img\nqemu-system-aarch64 -M virt \\\n  -cpu host -m 4G  # c\n")
    assert main(["lint", "--no-host", "--json", "--script", str(script)]) == 1
    assert "cpu-host-tcg" in {i["id"] for i in json.loads(capsys.readouterr().out)}


@pytest.mark.parametrize(
    "args",
    [
        ["lint", "--", "qemu-system-aarch64", "-smp", "abc"],
        ["lint", "--", "qemu-system-aarch64", "-m", "lots"],
        ["lint", "--", "ls", "-l"],
        ["lint"],
        ["lint", "--set", "cpu=max", "--", "qemu-system-aarch64", "-M", "virt"],
        ["lint", "--script", "/nonexistent/run.sh"],
        ["lint", "no-such-profile-anywhere"],
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("bootlab: ")
    assert captured.err.count("\n") == 1
    assert "Traceback" not in captured.err


def test_bad_project_rule_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "mine.toml").write_text("[[rule]]\nid = 'x'\n")
    assert main(["lint", "--no-host", "--rules", str(tmp_path / "rules"), "--", *GOOD]) == 2
    err = capsys.readouterr().err
    assert "mine.toml" in err and "rule x" in err and err.count("\n") == 1


def test_profile_form(capsys: pytest.CaptureFixture[str]) -> None:
    """The preset reproducing the user's fallback lints without errors (it may warn on this host)."""
    code = main(["lint", "redox-aarch64-tcg", "--json"])
    captured = capsys.readouterr()
    need(code != 2, f"preset not resolvable on this host: {captured.err.strip()}")
    assert code == 0
    assert not [i for i in json.loads(captured.out) if i["severity"] == "error"]


def test_profile_form_with_set_reaches_rules(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["lint", "redox-aarch64-tcg", "--set", "cpu=host", "--json"])
    captured = capsys.readouterr()
    need(code != 2, f"preset not resolvable on this host: {captured.err.strip()}")
    assert code == 1
    assert "cpu-host-tcg" in {i["id"] for i in json.loads(captured.out)}


def test_script_mode_picks_the_branch_of_a_multi_mode_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "run.sh"
    script.write_text(
        '#!/bin/sh\nIMG=pure-rust.img\ncase "$1" in\n'
        "hvf) exec qemu-system-aarch64 -M virt -accel hvf -cpu host -smp 4 -bios f.fd "
        "-drive file=$IMG,format=raw,if=none,id=d0,snapshot=on -device virtio-blk-pci,drive=d0 ;;\n"
        "tcg) exec qemu-system-aarch64 -M virt -accel tcg -cpu host -bios f.fd "
        "-drive file=$IMG,format=raw,if=none,id=d0,snapshot=on -device virtio-blk-pci,drive=d0 ;;\nesac\n"
    )
    assert main(["lint", "--no-host", "--json", "--script", str(script), "--mode", "tcg"]) == 1
    assert "cpu-host-tcg" in {f["id"] for f in json.loads(capsys.readouterr().out)}
    assert main(["lint", "--no-host", "--json", "--script", str(script), "--mode", "hvf"]) == 0
    assert "cpu-host-tcg" not in {f["id"] for f in json.loads(capsys.readouterr().out)}
    assert main(["lint", "--no-host", "--mode", "tcg", "--", "qemu-system-aarch64", "-M", "virt"]) == 2
    assert "--mode picks a mode of a --script" in capsys.readouterr().err
