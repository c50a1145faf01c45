"""Pack files: every validation error at once, each naming its table and field; project packs override or extend
shipped ones, and an extending pack places its milestones among the base's."""

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
    """Every fact a shipped pack holds says where it comes from: entries, tables, frame groups and renames (the
    model requires the field; this requires it to say something, and [frames] to have one at all)."""
    assert {"edk2", "linux", "qemu", "redox"} <= set(available([SHIPPED_DIR]))
    for name in ("edk2", "linux", "qemu", "redox"):
        pack = read_pack_file(SHIPPED_DIR / f"{name}.toml")
        assert pack.reference.strip(), f"{name} has no reference"
        tables = [t for t in (pack.ready, pack.context, pack.frames) if t is not None]
        groups = [*pack.frames.group, *pack.frames.rename] if pack.frames is not None else []
        for entry in [*pack.milestone, *pack.signature, *pack.interaction, *pack.prompt, *tables, *groups]:
            assert entry.reference.strip(), f"{name}: {entry} has no reference"
    linux = read_pack_file(SHIPPED_DIR / "linux.toml")
    assert linux.frames and linux.frames.group and linux.frames.rename and linux.prompt and linux.context


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
    with pytest.raises(UsageError, match=r'mine\.toml: \[\[signature\]\] #1 \(id = "x"\): regex: bad regex'):
        load_packs(["mine"], tmp_path)


def test_every_kind_of_regex_field_is_checked_at_its_field(tmp_path: Path) -> None:
    """packs.model's Regex/Regexes types: a single regex, an optional one and a list are all compiled at load,
    and a bad one is reported at its field (a list at the field, not at an index)."""
    write(
        tmp_path,
        "mine",
        'name = "mine"\ndescription = "d"\nreference = "r"\nshell_prompt = "[#"\n'
        '[ready]\nlogin = ["login:", "(oops"]\nreference = "r"\n'
        '[[signature]]\nid = "x"\nregex = "x"\nkind = "k"\nfatal = true\ntitle = "t"\nreference = "r"\n'
        'follow = 3\ndump_end = "end)"\n'
        '[frames]\nskip = ["ok", "bad["]\n',
    )
    with pytest.raises(UsageError) as exc:
        load_packs(["mine"], tmp_path)
    problems = [line.strip() for line in str(exc.value).splitlines()[1:]]
    assert [p.split(": bad regex")[0] for p in problems] == [
        "[ready]: login",
        "(top level): shell_prompt",
        '[[signature]] #1 (id = "x"): dump_end',
        "[frames]: skip",
    ]
    assert "'(oops'" in problems[0] and "'bad['" in problems[3]


def test_missing_field_and_unknown_key(tmp_path: Path) -> None:
    write(tmp_path, "a", 'name = "a"\ndescription = "d"\n')
    with pytest.raises(UsageError, match=r"a\.toml: \(top level\): reference: required field missing"):
        load_packs(["a"], tmp_path)
    write(tmp_path, "b", 'name = "b"\ndescription = "d"\nreference = "r"\nsignatures = []\n')
    with pytest.raises(UsageError, match=r"b\.toml: \(top level\): signatures: unknown field"):
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
    write(tmp_path, "n", 'name = "n"\ndescription = "d"\nreference = "r"\n' + sig + "look_back = 999\n")
    with pytest.raises(UsageError, match=r'n\.toml: \[\[signature\]\] #1 \(id = "x"\): look_back: '):
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


def test_every_problem_of_a_pack_in_one_run(tmp_path: Path) -> None:
    """A first pack, as a new user writes it: seven mistakes, all said at once, each with its table and field."""
    write(
        tmp_path,
        "uboot",
        'name = "uboot"\nreference = "r"\n'
        '[[milestone]]\nname = "banner"\nregex = "U-Boot"\n'
        '[[signature]]\nid = "abort"\nregex = "(Synchronous"\ntitle = "t"\nreference = "r"\n'
        '[[interaction]]\nregex = "Hit any key"\nsend = "\\n"\nreference = "r"\nwait = 0.2\n',
    )
    with pytest.raises(UsageError) as exc:
        load_packs(["uboot"], tmp_path)
    lines = str(exc.value).splitlines()
    assert "uboot.toml has 7 problems" in lines[0]
    assert lines[1:] == [
        "  (top level): description: required field missing",
        '  [[milestone]] #1 (name = "banner"): reference: required field missing',
        "  [[signature]] #1 (id = \"abort\"): regex: bad regex '(Synchronous': missing ), unterminated subpattern at "
        "position 0",
        '  [[signature]] #1 (id = "abort"): kind: required field missing',
        '  [[signature]] #1 (id = "abort"): fatal: required field missing',
        "  [[interaction]] #1: id: required field missing",
        "  [[interaction]] #1: wait: unknown field (a typo, or a field of another table)",
    ]


TOP = 'name = "t"\ndescription = "d"\nreference = "r"\n'
SIG = '[[signature]]\nid = "x"\nregex = "x"\nkind = "k"\nfatal = true\ntitle = "t"\n'
MOVE = "move `{}` above the first [table] or [[table]] header"
TRAP = "a top-level key written after the {} header belongs to that table (TOML); " + MOVE


@pytest.mark.parametrize(
    ("text", "said"),
    [
        # a strict table refuses the key: named as the trap, not as an unknown field
        (
            TOP + SIG + 'reference = "r"\n' + "shell_prompt = '=> $'\n",
            '[[signature]] #1 (id = "x"): shell_prompt: ' + TRAP.format("[[signature]]", "shell_prompt = ..."),
        ),
        (
            TOP + '[ready]\nreference = "r"\nextends = "linux"\n',
            "[ready]: extends: " + TRAP.format("[ready]", "extends = ..."),
        ),
        # [vars] takes any name: `extends` there would silently be a var and the pack extend nothing
        (
            TOP + '[vars]\nuser = "root"\nextends = "linux"\n',
            "[vars]: extends: " + TRAP.format("[vars]", "extends = ..."),
        ),
        # the table has a field of that name: the top level misses it
        (
            'name = "t"\ndescription = "d"\n' + SIG + '\nreference = "r"\n',
            "(top level): reference: required field missing; `reference = ...` appears only under [table] or "
            "[[table]] headers, and a key written after a header belongs to that table (TOML): "
            + MOVE.format("reference = ..."),
        ),
        # ... and already has it: TOML itself refuses the second one
        (
            TOP + SIG + 'reference = "r"\n\nreference = "top"\n',
            "not valid TOML: Cannot overwrite a value (at line 12, column 18): `reference` is given twice in the "
            "[[signature]] table (its header is on line 4); if line 12 is meant for the top level, "
            + MOVE.format("reference = ..."),
        ),
    ],
    ids=["strict-array-table", "strict-table", "vars", "missing-at-top", "given-twice"],
)
def test_a_top_level_key_after_a_table_is_named_as_the_toml_trap(tmp_path: Path, text: str, said: str) -> None:
    write(tmp_path, "t", text)
    with pytest.raises(UsageError) as exc:
        load_packs(["t"], tmp_path)
    assert said in str(exc.value) and "\n" not in str(exc.value)  # one problem, one line


def test_a_var_may_share_a_top_level_key_name(tmp_path: Path) -> None:
    """Only a key the top level lacks is the trap: a pack's own `name` var beside its top-level name is a var."""
    write(tmp_path, "t", TOP + '[vars]\nname = "box"\n[ready]\nlogin = ["login:"]\nreference = "r"\n')
    assert load_packs(["t"], tmp_path).vars == {"name": "box"}


def test_problems_across_fields_join_the_one_run_list(tmp_path: Path) -> None:
    """The name, `after` without `extends` and an unknown frame group are said together, one line each."""
    write(
        tmp_path,
        "f",
        'name = "e"\ndescription = "d"\nreference = "r"\n'
        '[[milestone]]\nname = "m"\nregex = "m"\nreference = "r"\nafter = "kernel"\n'
        + SIG
        + 'reference = "r"\nfollow = 5\nframe = true\nframe_skip = ["nope"]\n',
    )
    with pytest.raises(UsageError) as exc:
        load_packs(["f"], tmp_path)
    lines = str(exc.value).splitlines()
    assert "f.toml has 3 problems" in lines[0]
    assert lines[1:] == [
        "  (top level): name: says 'e'; it must match the file name 'f'",
        '  [[milestone]] #1 (name = "m"): after: only places a milestone among those of the pack it extends, and '
        "this pack extends none; order milestones by where they are in the file",
        "  [[signature]] #1 (id = \"x\"): frame_skip: names frame group 'nope', which [frames] lacks; add a "
        "[[frames.group]] with that name or fix the name",
    ]


SYSTEMD = 'name = "{name}"\nregex = "Welcome to"\nreference = "r"\n'


def test_an_extending_pack_places_its_milestone_after_a_base_one(tmp_path: Path) -> None:
    write(
        tmp_path,
        "deb",
        'name = "deb"\nextends = "linux"\ndescription = "d"\nreference = "r"\n'
        '[[milestone]]\nname = "mine"\nregex = "My service is up"\nreference = "r"\nafter = "basic"\n'
        '[[milestone]]\nname = "early"\nregex = "Early"\nreference = "r"\nbefore = "kernel"\n'
        '[[milestone]]\nname = "last"\nregex = "Last"\nreference = "r"\n',
    )
    names = [m.spec.name for m in load_packs(["deb"], tmp_path).milestones]
    base = [m.spec.name for m in load_packs(["linux"]).milestones]
    assert names == ["early", *base[: base.index("basic") + 1], "mine", *base[base.index("basic") + 1 :], "last"]
    # reached in boot order: 'login' still counts after the new stage
    from bootlab.console.observer import Observer

    obs = Observer(load_packs(["deb"], tmp_path))
    obs.feed_text("Reached target basic.target - Basic System.\nMy service is up\nhost login: ")
    assert [s.name for s in obs.stages] == ["basic", "mine", "login"]


def test_a_misplaced_milestone_is_bad_input(tmp_path: Path) -> None:
    write(
        tmp_path,
        "deb",
        'name = "deb"\nextends = "linux"\ndescription = "d"\nreference = "r"\n'
        '[[milestone]]\nname = "mine"\nregex = "x"\nreference = "r"\nafter = "sytemd"\n',
    )
    with pytest.raises(UsageError, match=r"milestone 'mine' is placed after 'sytemd', which pack linux does not"):
        load_packs(["deb"], tmp_path)
    write(
        tmp_path,
        "solo",
        'name = "solo"\ndescription = "d"\nreference = "r"\n[[milestone]]\n'
        + SYSTEMD.format(name="s")
        + 'after = "x"\n',
    )
    with pytest.raises(UsageError, match="only places a milestone among those of the pack it extends"):
        load_packs(["solo"], tmp_path)
