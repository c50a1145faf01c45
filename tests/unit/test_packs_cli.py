"""`bootlab packs`: list, new (a commented pack that validates), check (a pack on saved logs, every problem at once)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bootlab.cli.main import main

PACKS = Path(__file__).resolve().parents[1] / "packs"
UBOOT = PACKS / "uboot"


def test_check_reads_saved_logs_with_a_user_pack(capsys: pytest.CaptureFixture[str]) -> None:
    crash = UBOOT / "uboot-qemu_arm64-16M-abort.log"
    ok = UBOOT / "uboot-qemu_arm64-stop-autoboot.log"
    assert main(["packs", "check", str(UBOOT / "packs" / "uboot.toml"), str(ok), str(crash)]) == 1  # a crash: 1
    out = capsys.readouterr().out
    assert "uboot.toml: valid (uboot)" in out and "milestones: banner > dram > autoboot" in out
    assert f"{ok}: pass" in out and "   0.50s  would answer uboot-stop-autoboot: '\\n'" in out
    assert f"{crash}: crash  u-boot: Synchronous Abort exception" in out
    assert 'line: DRAM:  "Synchronous Abort" handler, esr 0x96000050' in out


def test_check_json_and_where_an_incomplete_log_stopped(capsys: pytest.CaptureFixture[str]) -> None:
    log = PACKS / "linux" / "debian-installer-12-arm64-select-language.log"
    linux = Path(__file__).resolve().parents[2] / "src" / "bootlab" / "packs" / "linux.toml"
    assert main(["packs", "check", str(linux), str(log), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    got = data["logs"][0]
    assert got["outcome"] == "incomplete" and got["timed"] and got["prompt"] == "[!!] Select a language"
    assert [s["name"] for s in got["stages"]] == ["kernel", "userspace"]
    assert "systemd" in data["pack"]["milestones"] and data["warnings"] == []


def test_check_with_credentials_reads_the_log_as_a_verified_login(capsys: pytest.CaptureFixture[str]) -> None:
    log = PACKS / "linux" / "guest-debian-amd64-wrong-password.log"
    linux = Path(__file__).resolve().parents[2] / "src" / "bootlab" / "packs" / "linux.toml"
    assert main(["packs", "check", str(linux), str(log)]) == 0  # no credentials: ready at `login:`
    assert main(["packs", "check", str(linux), str(log), "--set", "vars.password=wrong"]) == 1
    out = capsys.readouterr().out
    assert f"{log}: login-failed  login failed" in out and "would answer linux-password: 'wrong\\n'" in out


def test_new_writes_a_commented_pack_that_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bootlab.toml").write_text("")
    assert main(["packs", "new", "myos", "--config", str(tmp_path / "bootlab.toml")]) == 0
    path = tmp_path / "packs" / "myos.toml"
    text = path.read_text()
    assert 'name = "myos"' in text and "# required" in text and "ABOVE the first [table]" in text
    assert main(["packs", "check", str(path)]) == 0
    assert main(["packs", "new", "myos", "--config", str(tmp_path / "bootlab.toml")]) == 2  # exists
    assert "exists; edit it, or give --force" in capsys.readouterr().err
    # an extension: placed after a base milestone once the placeholder is filled in
    assert main(["packs", "new", "deb", "--extends", "linux", "--config", str(tmp_path / "bootlab.toml")]) == 0
    ext = tmp_path / "packs" / "deb.toml"
    assert main(["packs", "check", str(ext)]) == 2
    assert "is placed after 'TODO: the linux milestone it comes after'" in capsys.readouterr().err
    ext.write_text(ext.read_text().replace('after = "TODO: the linux milestone it comes after"', 'after = "basic"'))
    capsys.readouterr()
    assert main(["packs", "check", str(ext)]) == 0
    assert "basic > my-service > login" in capsys.readouterr().out
    assert main(["packs", "--config", str(tmp_path / "bootlab.toml")]) == 0
    listed = capsys.readouterr().out
    assert "myos" in listed and "deb " in listed and "(extends linux)" in listed and "redox" in listed


def test_bad_pack_and_bad_input_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "uboot.toml"
    bad.write_text('name = "uboot"\nreference = "r"\n[[milestone]]\nname = "banner"\nregex = "U-Boot"\n')
    assert main(["packs", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "has 2 problems" in err and "(top level): description: required field missing" in err
    assert main(["packs", "check", str(tmp_path / "nope.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    good = tmp_path / "u.toml"
    shutil.copy(UBOOT / "packs" / "uboot.toml", good)
    assert main(["packs", "check", str(UBOOT / "packs" / "uboot.toml"), str(tmp_path / "x.log")]) == 2
    assert "log file" in capsys.readouterr().err
    assert main(["packs", "check", str(UBOOT / "packs" / "uboot.toml"), "--set", "cpu=max"]) == 2
    assert "takes profile vars only" in capsys.readouterr().err
    assert main(["packs", "new", "bad name"]) == 2


def test_check_warns_about_a_title_no_regex_fills(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = tmp_path / "w.toml"
    pack.write_text(
        'name = "w"\ndescription = "d"\nreference = "r"\n[ready]\nshell = ["=> $"]\nreference = "r"\n'
        '[[signature]]\nid = "x"\nregex = "boom in (?P<proc>\\\\S+)"\nkind = "k"\nfatal = true\n'
        'title = "w: boom in {process}"\nreference = "r"\n'
    )
    assert main(["packs", "check", str(pack)]) == 0
    assert "title uses {process}, which none of its regexes captures" in capsys.readouterr().out


README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_example_is_the_tested_uboot_pack() -> None:
    """The README's complete example is the U-Boot pack the golden tests read real U-Boot consoles with."""
    assert (UBOOT / "packs" / "uboot.toml").read_text() in README.read_text()


def test_the_readme_lists_every_required_field() -> None:
    from bootlab.packs import model

    rows = {}
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == 3 and cells[0].startswith(("top level", "`[")):
            rows[cells[0].split(":")[0].split("`")[1] if "`" in cells[0] else "top level"] = cells[1]
    tables = {
        "top level": model.PackFile,
        "[[milestone]]": model.Milestone,
        "[ready]": model.Ready,
        "[[interaction]]": model.Interaction,
        "[[signature]]": model.Signature,
        "[[prompt]]": model.Prompt,
    }
    for table, cls in tables.items():
        required = {name for name, f in cls.model_fields.items() if f.is_required()}
        assert required, table
        missing = [name for name in required if f"`{name}`" not in rows[table]]
        assert not missing, f"README's pack table, {table}: required {missing} not listed"
