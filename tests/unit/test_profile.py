"""Profiles: validation, extends over presets, --set, templates, paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootlab.errors import UsageError
from bootlab.profile.loader import apply_sets, load_project, parse_set, resolve_profile
from bootlab.profile.model import parse_size_mib
from bootlab.qemu.size import format_size_mib


def write(project: Path, text: str) -> Path:
    path = project / "bootlab.toml"
    path.write_text(text)
    return path


def test_sizes() -> None:
    assert parse_size_mib("2G") == 2048
    assert parse_size_mib("512M") == 512
    assert parse_size_mib(2048) == 2048
    assert parse_size_mib("1.5G") == 1536
    assert format_size_mib(2048) == "2G"
    assert format_size_mib(1536) == "1536M"
    for bad in ("lots", "2X", "0.3M", True):
        with pytest.raises(ValueError):
            parse_size_mib(bad)


def test_preset_resolves_with_extends_chain(project: Path) -> None:
    prof = resolve_profile("redox-aarch64", seed=7)
    assert prof.accel == ["hvf", "kvm", "tcg"]
    assert prof.cpu_for("hvf") == "host" and prof.cpu_for("tcg") == "cortex-a72"
    assert prof.memory == 2048 and prof.fallback == "redox-aarch64-tcg"
    assert prof.drives[0].file == str(project / "harddrive.img")


def test_project_profile_extends_preset_and_overrides(project: Path) -> None:
    write(
        project,
        """
[profiles.mine]
extends = "redox-aarch64"
machine = { type = "virt", highmem = "off" }
vars = { image = "pure-rust.img", build = "dsb-wfi" }
append = "x redoxsim.build={build} seed={seed} boot={boot}"
kernel = "k.bin"
""",
    )
    prof = resolve_profile("mine", seed=42, boot_index=3)
    assert prof.machine.type == "virt" and prof.machine.options == {"highmem": "off"}
    assert prof.vars["user"] == "root"  # inherited from the preset's vars, merged
    assert prof.append == "x redoxsim.build=dsb-wfi seed=42 boot=3"
    assert prof.kernel == str(project / "k.bin")
    assert prof.drives[0].file == str(project / "pure-rust.img")


def test_project_profile_may_extend_preset_of_same_name(project: Path) -> None:
    write(project, '[profiles.redox-aarch64-tcg]\nextends = "redox-aarch64-tcg"\nsmp = 2\n')
    assert resolve_profile("redox-aarch64-tcg", seed=1).smp == 2


def test_sets_override_any_field(project: Path) -> None:
    sets = ["cpu=max", "machine.highmem=off", "vars.build=dsb-wfi", "smp=4", "accel=kvm,tcg", "memory=1G"]
    prof = resolve_profile("redox-aarch64", sets=sets, seed=1)
    assert prof.cpu == "max" and prof.cpu_for("hvf") == "max"
    assert prof.machine.options["highmem"] == "off"
    assert prof.vars["build"] == "dsb-wfi"
    assert (prof.smp, prof.accel, prof.memory) == (4, ["kvm", "tcg"], 1024)


def test_parse_set_reads_toml_values() -> None:
    assert parse_set("smp=4") == (["smp"], 4)
    assert parse_set("network=true") == (["network"], True)
    assert parse_set("cpu=max") == (["cpu"], "max")
    assert parse_set("extra_args=['-s']") == (["extra_args"], ["-s"])
    assert apply_sets({"machine": "virt"}, ["machine.highmem=off"]) == {"machine": {"type": "virt", "highmem": "off"}}


@pytest.mark.parametrize("item", ["noequals", "=x", "a..b=1", ".a=1"])
def test_bad_set_is_one_line(item: str, project: Path) -> None:
    with pytest.raises(UsageError, match="--set"):
        resolve_profile("redox-aarch64", sets=[item], seed=1)


def test_set_into_scalar_is_refused(project: Path) -> None:
    with pytest.raises(UsageError, match="is not a table"):
        resolve_profile("redox-aarch64", sets=["smp.x=1"], seed=1)


def test_seed_is_random_and_recorded(project: Path) -> None:
    seeds = {resolve_profile("redox-aarch64").seed for _ in range(5)}
    assert len(seeds) > 1
    assert all(0 <= s <= 0xFFFFFFFF for s in seeds)


def test_keep_builtins_leaves_placeholders(project: Path) -> None:
    write(project, '[profiles.p]\nextends = "linux-aarch64"\nappend = "s={seed} b={boot}"\n')
    assert resolve_profile("p", keep_builtins=True).append == "s={seed} b={boot}"


def test_brace_escape(project: Path) -> None:
    write(project, '[profiles.p]\nextends = "linux-aarch64"\nappend = "a={{b}}"\n')
    assert resolve_profile("p", seed=0).append == "a={b}"


@pytest.mark.parametrize(
    ("toml", "match"),
    [
        ("[profiles.p]\nextends = 'linux-aarch64'\nsmp = 'abc'\n", r"profiles\.p\.smp: .*integer"),
        ("[profiles.p]\nextends = 'linux-aarch64'\nbogus = 1\n", r"profiles\.p\.bogus: unknown key"),
        ("[profiles.p]\nextends = 'linux-aarch64'\nmemory = 'lots'\n", r"profiles\.p\.memory: .*size"),
        ("[profiles.p]\nextends = 'linux-aarch64'\naccel = ['warp']\n", r"profiles\.p\.accel"),
        ("[profiles.p]\nextends = 'nope'\n", r"unknown profile or preset `nope`"),
        ("[profiles.p]\nextends = 'q'\n[profiles.q]\nextends = 'p'\n", r"loop \(p -> q -> p\)"),
        ("[profiles.p]\nmachine = 'virt'\n", r"profiles\.p\.arch: required"),
        ("[profiles.p]\nextends = 'linux-aarch64'\nappend = '{nope}'\n", r"unknown variable \{nope\}"),
        ("[profiles.p]\nextends = 'linux-aarch64'\nappend = '{a.b}'\n", r"not a template variable"),
        ("[profiles.p]\nextends = 'linux-aarch64'\nforwards = ['22']\n", r"HOST_PORT:GUEST_PORT"),
        ("[profiles.p]\nextends = 'linux-aarch64'\nshares = {'/x' = 'bad tag'}\n", r"mount tag"),
        ("[profiles.p]\nextends = 'linux-aarch64'\nfirmware = {vars = 'v.fd'}\n", r"firmware"),
        ("[profiles.p]\narch = 'aarch64'\nmachine = {highmem = 'off'}\n", r"needs `type`"),
        ("[profiles.p\n", r"invalid TOML"),
        ("[other]\n", r"unknown top-level key `other`"),
    ],
)
def test_bad_profiles_are_one_clear_line(project: Path, toml: str, match: str) -> None:
    write(project, toml)
    with pytest.raises(UsageError, match=match) as info:
        resolve_profile("p", seed=0)
    assert "\n" not in str(info.value)
    assert "bootlab.toml" in str(info.value) or "nope" in str(info.value) or "loop" in str(info.value)


def test_missing_config_file(project: Path) -> None:
    with pytest.raises(UsageError, match="file not found"):
        load_project(project / "missing.toml")


def test_unknown_profile_lists_known(project: Path) -> None:
    with pytest.raises(UsageError, match="redox-aarch64-tcg"):
        resolve_profile("nope", seed=0)


def test_project_file_found_in_parent(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(project, "[profiles.p]\nextends = 'linux-aarch64'\nkernel = 'k'\n")
    sub = project / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert resolve_profile("p", seed=0).kernel == str(project / "k")  # relative to the project file


def test_set_errors_name_the_set(project: Path) -> None:
    with pytest.raises(UsageError, match=r"^--set smp=abc: preset linux-aarch64\.smp: .*integer"):
        resolve_profile("linux-aarch64", sets=["smp=abc"], seed=0)
    with pytest.raises(UsageError, match=r"^--set machine\.highmem=\[1\]: .*machine"):
        resolve_profile("linux-aarch64", sets=["machine.highmem=[1]"], seed=0)


def test_self_extends_without_preset(project: Path) -> None:
    write(project, "[profiles.a]\nextends = 'a'\n")
    with pytest.raises(UsageError, match=r"names the profile itself.*no preset `a`"):
        resolve_profile("a", seed=0)


def test_unbalanced_brace_and_zero_memory(project: Path) -> None:
    write(project, "[profiles.p]\nextends = 'linux-aarch64'\nappend = 'x{y'\n")
    with pytest.raises(UsageError, match=r"profiles\.p\.append: unbalanced `\{`"):
        resolve_profile("p", seed=0)
    with pytest.raises(UsageError, match="0 MiB is not a size"):
        resolve_profile("linux-aarch64", sets=["memory=0"], seed=0)
