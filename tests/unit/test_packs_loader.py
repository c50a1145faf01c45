"""Pack files: validation errors are one clear line; project packs override or extend shipped ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootlab.errors import UsageError
from bootlab.packs.loader import SHIPPED_DIR, available, load_packs, read_pack_file


def write(d: Path, name: str, text: str) -> Path:
    (d / "packs").mkdir(exist_ok=True)
    path = d / "packs" / f"{name}.toml"
    path.write_text(text)
    return path


def test_shipped_packs_load_and_every_entry_has_a_reference() -> None:
    assert {"edk2", "linux", "qemu", "redox"} <= set(available([SHIPPED_DIR]))
    for name in ("edk2", "linux", "qemu", "redox"):
        pack = read_pack_file(SHIPPED_DIR / f"{name}.toml")
        assert pack.reference
        for entry in [*pack.milestone, *pack.signature, *pack.interaction]:
            assert entry.reference.strip(), f"{name}: {entry} has no reference"


def test_packs_compose_in_order() -> None:
    ps = load_packs(["edk2", "redox"])
    assert [m.spec.name for m in ps.milestones][:2] == ["firmware", "bootloader"]
    assert "edk2-startup-nsh-countdown" in {i.spec.id for i in ps.interactions}
    assert load_packs("edk2,redox") is ps  # compiled once, cached


def test_unknown_pack_is_a_usage_error_naming_the_known_ones() -> None:
    with pytest.raises(UsageError, match=r"unknown pack 'nope' \(known: .*redox.*\)"):
        load_packs(["nope"])


def test_no_pack_named() -> None:
    with pytest.raises(UsageError, match="no pack named"):
        load_packs([])


def test_bad_toml_is_one_line(tmp_path: Path) -> None:
    write(tmp_path, "mine", "name = \n")
    with pytest.raises(UsageError) as exc:
        load_packs(["mine"], tmp_path)
    assert "mine.toml is not valid TOML" in str(exc.value) and "\n" not in str(exc.value)


def test_bad_regex_names_the_field(tmp_path: Path) -> None:
    write(
        tmp_path,
        "mine",
        'name = "mine"\ndescription = "d"\nreference = "r"\n'
        '[[signature]]\nid = "x"\nregex = "(unclosed"\nkind = "k"\nfatal = true\ntitle = "t"\nreference = "r"\n',
    )
    with pytest.raises(UsageError, match=r"mine\.toml: signature\.0\.regex: .*bad regex"):
        load_packs(["mine"], tmp_path)


def test_missing_field_and_unknown_key(tmp_path: Path) -> None:
    write(tmp_path, "a", 'name = "a"\ndescription = "d"\n')
    with pytest.raises(UsageError, match=r"a\.toml: reference: Field required"):
        load_packs(["a"], tmp_path)
    write(tmp_path, "b", 'name = "b"\ndescription = "d"\nreference = "r"\nsignatures = []\n')
    with pytest.raises(UsageError, match=r"b\.toml: signatures: Extra inputs"):
        load_packs(["b"], tmp_path)


def test_window_fields_need_follow(tmp_path: Path) -> None:
    write(
        tmp_path,
        "w",
        'name = "w"\ndescription = "d"\nreference = "r"\n[[signature]]\nid = "x"\nregex = "x"\nkind = "k"\n'
        'fatal = true\ntitle = "t"\nreference = "r"\nframe = true\n',
    )
    with pytest.raises(UsageError, match="follow = 0"):
        load_packs(["w"], tmp_path)


def test_look_back_needs_its_regexes_and_the_reverse(tmp_path: Path) -> None:
    sig = '[[signature]]\nid = "x"\nregex = "x"\nkind = "k"\nfatal = true\ntitle = "t"\nreference = "r"\n'
    write(tmp_path, "l", 'name = "l"\ndescription = "d"\nreference = "r"\n' + sig + "look_back = 2\n")
    with pytest.raises(UsageError, match="look_back and look_back_regex go together"):
        load_packs(["l"], tmp_path)
    write(tmp_path, "m", 'name = "m"\ndescription = "d"\nreference = "r"\n' + sig + "look_back_regex = ['y']\n")
    with pytest.raises(UsageError, match="look_back and look_back_regex go together"):
        load_packs(["m"], tmp_path)
    write(tmp_path, "n", 'name = "n"\ndescription = "d"\nreference = "r"\n' + sig + "look_back = 99\n")
    with pytest.raises(UsageError, match=r"n\.toml: signature\.0\.look_back"):
        load_packs(["n"], tmp_path)
    write(
        tmp_path,
        "o",
        'name = "o"\ndescription = "d"\nreference = "r"\n' + sig + 'look_back = 3\nlook_back_regex = ["y"]\n',
    )
    assert load_packs(["o"], tmp_path).look_back == 3


def test_project_pack_extends_shipped_one(tmp_path: Path) -> None:
    write(
        tmp_path,
        "redox",
        'name = "redox"\nextends = "redox"\ndescription = "my fork"\nreference = "r"\n'
        '[[signature]]\nid = "fork-9p"\nregex = "9p: mount failed"\nkind = "driver-error"\nfatal = false\n'
        'title = "redox: 9p mount failed"\nreference = "my fork"\n',
    )
    ps = load_packs(["redox"], tmp_path)
    ids = [s.spec.id for s in ps.signatures]
    assert "fork-9p" in ids and "redox-kernel-panic" in ids


def test_project_pack_replaces_shipped_one(tmp_path: Path) -> None:
    write(tmp_path, "redox", 'name = "redox"\ndescription = "mine"\nreference = "r"\n')
    assert load_packs(["redox"], tmp_path).signatures == ()


def test_name_must_match_file(tmp_path: Path) -> None:
    write(tmp_path, "x", 'name = "y"\ndescription = "d"\nreference = "r"\n')
    with pytest.raises(UsageError, match="must match the file name"):
        load_packs(["x"], tmp_path)
