"""Following run scripts without running them: variables, arrays, modes, here-docs, comments, branches by host."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from bootlab.cli.main import main
from bootlab.errors import UsageError
from bootlab.profile.script_reader import read_script

# A run-dev.sh like the user's: variables (one from the environment with a default), a bash array over several
# lines, a case over modes ($1), a here-document for expect, comment lines, a pkill, and the accelerator picked
# by host. Nothing of it is executed.
RUN_DEV = textwrap.dedent(
    """\
    #!/bin/bash
    # Redox dev runner. Modes: interactive (default), background, tmux, expect, gui.
    set -e
    cd "$(dirname "$0")"
    IMAGE=${IMAGE:-build/aarch64/pure-rust.img}   # override from the environment
    FIRMWARE=tools/firmware/edk2-aarch64-code.fd
    MODE="${1:-interactive}"
    shift || true

    if [ "$(uname)" = "Darwin" ]; then
        ACCEL=hvf; CPU=host
    else
        ACCEL=tcg
        CPU=cortex-a72
    fi

    QEMU_ARGS=(-M virt -accel "$ACCEL" -cpu "$CPU" -m 2G
        -bios "$FIRMWARE"    # edk2
        -drive "file=$IMAGE,format=raw,id=disk0,if=none"
        -device virtio-blk-pci,drive=disk0)

    pkill -f qemu-system-aarch64 || true   # kill leftovers

    case "$MODE" in
        interactive|i)
            qemu-system-aarch64 "${QEMU_ARGS[@]}" -nographic "$@"
            ;;
        background)
            qemu-system-aarch64 "${QEMU_ARGS[@]}" -serial unix:/tmp/redox.sock,server,nowait -display none -daemonize
            ;;
        tmux)
            tmux new-session -d -s redox "qemu-system-aarch64 ${QEMU_ARGS[*]} -nographic"
            ;;
        expect)
            expect <<'END'
    spawn qemu-system-aarch64 -M virt -cpu max
    expect "login:"
    send "root\\r"
    END
            ;;
        gui) qemu-system-aarch64 "${QEMU_ARGS[@]}" -serial stdio ;;
        *) echo "usage: $0 [interactive|background|tmux|expect|gui]"; exit 1 ;;
    esac
    """
)

COMMON = [
    "-m", "2G", "-bios", "tools/firmware/edk2-aarch64-code.fd",
    "-drive", "file=build/aarch64/pure-rust.img,format=raw,id=disk0,if=none", "-device", "virtio-blk-pci,drive=disk0",
]  # fmt: skip


def read(text: str, *args: str, env: dict[str, str] | None = None, cwd: Path = Path("/work")) -> list[list[str]]:
    return [c.argv for c in read_script(text, "/s/run.sh", args=list(args), env=env or {}, cwd=cwd).commands]


def tcg(*extra: str) -> list[str]:
    return ["qemu-system-aarch64", "-M", "virt", "-accel", "tcg", "-cpu", "cortex-a72", *COMMON, *extra]


def hvf(*extra: str) -> list[str]:
    return ["qemu-system-aarch64", "-M", "virt", "-accel", "hvf", "-cpu", "host", *COMMON, *extra]


def test_modes_variables_arrays_and_branches_by_host() -> None:
    reading = read_script(RUN_DEV, "/s/run.sh", args=[], env={}, cwd=Path("/work"))
    assert [c.argv for c in reading.commands] == [hvf("-nographic"), tcg("-nographic")]
    assert reading.commands[0].base == Path("/s")  # cd "$(dirname "$0")"
    assert reading.commands[0].via == ['line 10: `[ "$(uname)" = "Darwin" ]` taken']
    assert reading.modes == ["interactive", "i", "background", "tmux", "expect", "gui"] and reading.mode_line == 24
    assert [str(n) for n in reading.not_run] == ["line 22: pkill -f qemu-system-aarch64"]
    assert "$(uname) runs a command" in str(reading.unfollowed[0]) and reading.unfollowed[0].line == 10
    assert read(RUN_DEV, "gui")[1] == tcg("-serial", "stdio")
    assert read(RUN_DEV, "background")[1] == tcg("-serial", "unix:/tmp/redox.sock,server,nowait", "-display", "none",
                                                 "-daemonize")  # fmt: skip
    assert read(RUN_DEV, "tmux")[1] == tcg("-nographic")  # the command inside tmux's quoted argument
    assert read(RUN_DEV, "i", "-s", "-S")[1] == tcg("-nographic", "-s", "-S")  # "$@" after shift
    assert read(RUN_DEV, env={"IMAGE": "other.img"})[1][12] == "file=other.img,format=raw,id=disk0,if=none"


def test_here_doc_and_unknown_mode_say_which_modes_exist() -> None:
    for mode in ("expect", "nope"):
        with pytest.raises(UsageError, match=r"no qemu-system-\* command runs with mode '(expect|nope)'; its modes "
                           r"\(case on line 24\) are: interactive, i, background, tmux, expect, gui"):  # fmt: skip
            read(RUN_DEV, mode)


def test_no_qemu_command_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "build.sh"
    script.write_text("#!/bin/sh\n# builds the image\nmake all\necho 'run qemu-system-aarch64 yourself'\n")
    assert main(["profiles", "import", "p", "--script", str(script), "--config", str(tmp_path / "b.toml")]) == 2
    err = capsys.readouterr().err
    assert err == f"bootlab: {script}: no qemu-system-* command found; give the command line instead: " \
                  "bootlab profiles import NAME -- qemu-system-ARCH ARGS...\n"  # fmt: skip
    assert not (tmp_path / "b.toml").exists()


def test_command_substitution_in_the_command_is_refused_with_its_line() -> None:
    text = 'IMG=$(ls build/*.img | head -1)\nqemu-system-aarch64 -M virt -drive "file=$IMG,format=raw"\n'
    with pytest.raises(UsageError, match=r"/s/run.sh:2: \$IMG is set on line 1 by something bootlab does not run"):
        read(text)


def test_env_option_sets_what_the_script_cannot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "run.sh"
    script.write_text('qemu-system-aarch64 -M virt -cpu max -m "${MEM:?}" -kernel "$KERNEL" -nographic\n')
    code = main(["profiles", "import", "--json", "p", "--script", str(script), "--env", "MEM=1G", "--env",
                 "KERNEL=/boot/vmlinuz", "--config", str(tmp_path / "bootlab.toml")])  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and (data["table"]["memory"], data["table"]["kernel"]) == ("1G", "/boot/vmlinuz")
    assert main(["profiles", "import", "p", "--script", str(script), "--env", "oops"]) == 2
    assert "--env 'oops': expected NAME=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("script", "argv"),
    [
        # continuation lines, a trailing comment, redirections and a pipe
        ("qemu-system-x86_64 \\\n  -m 1G \\\n  -smp 2  # fast\n", ["-m", "1G", "-smp", "2"]),
        ("exec qemu-system-x86_64 -m 1G 2>&1 </dev/null | tee log.txt &\n", ["-m", "1G"]),
        # a function called with arguments, a sourced file, arithmetic and defaults
        ('run() {\n  qemu-system-x86_64 -smp "$1" "$@"\n}\nrun 4 -m 2G\n', ["-smp", "4", "4", "-m", "2G"]),
        (". ./vars.sh\nqemu-system-x86_64 -m $MEM -smp $((N * 2))\n", ["-m", "3G", "-smp", "4"]),
        # a quoted multi-line string, a variable used unquoted (split into words)
        ('ARGS="-m 1G\n  -smp 2"\nqemu-system-x86_64 $ARGS -name "a b"\n', ["-m", "1G", "-smp", "2", "-name", "a b"]),
        # known conditions are evaluated; sudo/nohup prefixes; ${X%.img}
        ('X=disk.img\nif [ -n "$X" ]; then M=2G; else M=1G; fi\n'
         'sudo nohup qemu-system-x86_64 -m $M -hda "${X%.img}.qcow2"\n', ["-m", "2G", "-hda", "disk.qcow2"]),
        # a for loop over known words
        ("for n in 1 2 3; do S=$n; done\nqemu-system-x86_64 -smp $S\n", ["-smp", "3"]),
    ],
)  # fmt: skip
def test_shell_forms(script: str, argv: list[str], tmp_path: Path) -> None:
    (tmp_path / "vars.sh").write_text("MEM=3G\nN=2\n")
    assert read(script, cwd=tmp_path) == [["qemu-system-x86_64", *argv]]


def test_option_parsing_loop_over_the_arguments() -> None:
    text = textwrap.dedent(
        """\
        MEM=1G; GDB=
        while [ $# -gt 0 ]; do
            case "$1" in
                --mem) MEM="$2"; shift ;;
                --gdb) GDB="-s -S" ;;
            esac
            shift
        done
        qemu-system-x86_64 -m "$MEM" $GDB
        """
    )
    assert read(text) == [["qemu-system-x86_64", "-m", "1G"]]
    assert read(text, "--gdb", "--mem", "4G") == [["qemu-system-x86_64", "-m", "4G", "-s", "-S"]]


def test_pkill_and_echo_mentioning_qemu_are_not_the_command() -> None:
    text = "pkill -f qemu-system-aarch64\necho qemu-system-aarch64 -M virt\nqemu-system-aarch64 -M virt -m 1G\n"
    assert read(text) == [["qemu-system-aarch64", "-M", "virt", "-m", "1G"]]


def test_lint_reads_scripts_the_same_way(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "run.sh"
    script.write_text('CPU=host\nACCEL=hvf\nqemu-system-aarch64 -M virt -accel "$ACCEL" -cpu "$CPU" -smp 4 -m 2G\n')
    main(["lint", "--no-host", "--json", "--script", str(script)])
    ids = {f["id"] for f in json.loads(capsys.readouterr().out)}
    assert {"hvf-cpu", "hvf-smp-unknown-guest"} & ids  # $ACCEL and $CPU were resolved: HVF rules fire


@pytest.mark.parametrize(
    "text",
    [
        'X[$i]=1\necho ${X[$j]} ${#X[@]} ${X/a/b} $(( 1 / 0 )) "unclosed\n',
        "f() { f; }\nf\n",  # endless recursion
        "case $(uname) in\n Linux) A=1;;\n esac\nwhile true; do :; done\nuntil false; do :; done\n",
        "fi\ndone\nesac\n}\n",
        "for i in $(seq 1 100); do if [ -e /x$i ]; then A$i=1; fi; done\n",
    ],
)
def test_odd_shell_is_reported_not_a_crash(text: str) -> None:
    with pytest.raises(UsageError, match="no qemu-system-"):
        read(text)


@pytest.mark.parametrize(
    ("expr", "value"),
    [("1 + 2 * 3", "7"), ("(1+2)*3", "9"), ("10 - 4 - 3", "3"), ("100/10/5", "2"), ("2*3%4", "2"), ("7 / 2", "3")],
)
def test_arithmetic_levels_bind_and_associate_as_sh_does(expr: str, value: str) -> None:
    """$((...)): * / % bind tighter than + -, and each level runs left to right (one precedence-level helper)."""
    from bootlab.profile.sh_words import _arith

    assert _arith(expr) == value
