"""Builds and revisions with real git and real build commands (boots are simulated: no QEMU here).

The user's repository must come out of every command exactly as it went in: after a build of another revision,
a failed build, Ctrl-C during a build, and a SIGKILLed bootlab (the next command cleans up after it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bisect_support import ImageProject, make_bisect_project, use_image_boots

from bootlab.cli.main import main
from bootlab.errors import UsageError
from bootlab.host import Host
from bootlab.source import git as source_git
from bootlab.source.checkout import Checkout, journal_dir, recover
from gitrepo import SIM_BUILD, commits, git, make_repo, snapshot


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOTLAB_CACHE", str(tmp_path / "cache"))


def test_tree_state_names_commit_branch_and_dirt(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", ["a", "b"])
    head = commits(repo)[-1]
    state = source_git.tree_state(repo)
    assert state == source_git.TreeState(head, False, "main")
    (repo / "untracked.txt").write_text("x")  # untracked files do not make a tree dirty (git describe --dirty)
    assert source_git.tree_state(repo / "kernel.conf") == source_git.TreeState(head, False, "main")
    (repo / "kernel.conf").write_text("changed\n")
    assert source_git.tree_state(repo).dirty  # type: ignore[union-attr]
    git(repo, "checkout", "-q", "--", "kernel.conf")
    git(repo, "checkout", "-q", "--detach", "HEAD~1")
    state = source_git.tree_state(repo)
    assert state is not None and state.branch is None and state.commit == commits(repo)[0]
    assert source_git.tree_state(tmp_path) is None  # not in git


def test_revisions_resolve_and_lines_follow_first_parents(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", ["a", "b", "c"])
    first, _, third = commits(repo)
    assert source_git.resolve(repo, "HEAD~2") == first
    with pytest.raises(UsageError, match=r"--good 'nope': unknown revision in .*git log"):
        source_git.resolve(repo, "nope", what="--good")
    git(repo, "checkout", "-q", "-b", "topic", first)
    (repo / "topic.txt").write_text("t")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "topic work")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge topic", "topic")
    merge = source_git.resolve(repo, "HEAD")
    line = source_git.first_parent_line(repo, first, merge)
    assert line[0] == first and line[-1] == merge and line[-2] == third  # the topic commit is not on the line
    assert len(line) == 4
    assert source_git.is_ancestor(repo, first, merge) and not source_git.is_ancestor(repo, merge, first)


def test_a_checkout_leaves_the_repository_as_it_was(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", ["a", "b", "c"])
    (repo / "kernel.conf").write_text("my uncommitted work\n")  # a dirty tree is fine: it is never touched
    (repo / "notes.txt").write_text("untracked\n")
    before = snapshot(repo)
    with Checkout(repo) as co:
        co.switch(commits(repo)[0])
        assert (co.path / "kernel.conf").read_text() == "a\n"
        assert co.journal.is_file()
        assert "worktree" in git(repo, "worktree", "list", "--porcelain")
    assert snapshot(repo) == before
    assert not co.path.exists() and not co.journal.exists()


def test_a_checkout_brings_initialised_submodules_and_writes_no_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = make_repo(tmp_path / "lib", ["v1", "v2"])
    top = make_repo(tmp_path / "top", ["a"])
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")  # git >= 2.38 refuses file:// submodules unless allowed
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "protocol.file.allow")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "always")
    git(top, "submodule", "-q", "add", str(lib), "lib")
    git(top, "commit", "-q", "-m", "add lib")
    git(top / "lib", "checkout", "-q", "HEAD~1")
    git(top, "commit", "-q", "-am", "lib at v1")
    git(top / "lib", "checkout", "-q", "main")
    before = snapshot(top)
    with Checkout(top) as co:
        co.switch(commits(top)[-1])
        assert (co.path / "lib" / "kernel.conf").read_text() == "v1\n"
        co.switch(commits(top)[-2])
        assert (co.path / "lib" / "kernel.conf").read_text() == "v2\n"
    assert snapshot(top) == before


def test_recovery_removes_the_checkout_of_a_dead_bootlab(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", ["a", "b"])
    before = snapshot(repo)
    co = Checkout(repo).__enter__()
    co.switch(commits(repo)[0])
    assert recover() == []  # its owner (this process) is alive: not touched
    dead = subprocess.Popen(["true"])
    dead.wait()
    data = json.loads(co.journal.read_text())
    co.journal.write_text(json.dumps({**data, "pid": dead.pid, "start": None}))
    done = recover()
    assert len(done) == 1 and "removed the checkout a killed bootlab" in done[0] and str(repo) in done[0]
    assert snapshot(repo) == before
    assert not co.path.exists() and list(journal_dir().iterdir()) == []


def bootlab_process(config: Path, root: Path, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "BOOTLAB_CACHE": str(root / "cache"),
        "BOOTLAB_STORE": str(root / "store"),
        "XDG_STATE_HOME": str(root / "state"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bootlab", *args, "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


SLOW_BUILD = """set -e
echo $$ > "$PIDFILE"
echo building
sleep 60 &
echo $! > "$PIDFILE.child"
wait
"""


def slow_project(tmp_path: Path) -> tuple[Path, Path]:
    config, repo = make_bisect_project(tmp_path, ["a", "b"], script=SLOW_BUILD)
    text = config.read_text().replace(
        'outputs = ["out/initrd"] }', f'outputs = ["out/initrd"], env = {{ PIDFILE = "{tmp_path / "pid"}" }} }}', 1
    )
    config.write_text(text)
    return config, repo


def wait_for(path: Path, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("how", ["ctrl-c", "sigkill"])
def test_an_interrupted_build_leaves_the_repository_as_it_was(tmp_path: Path, how: str) -> None:
    config, repo = slow_project(tmp_path)
    before = snapshot(repo)
    proc = bootlab_process(config, tmp_path, "build", "sim", "--rev", "HEAD~1")
    wait_for(tmp_path / "pid")
    child = wait_for(tmp_path / "pid.child")
    assert "worktree" in git(repo, "worktree", "list", "--porcelain")
    if how == "ctrl-c":
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
    else:
        proc.kill()
        proc.wait(timeout=30)
        assert snapshot(repo) != before  # the worktree is still registered: the next command must notice
        later = bootlab_process(config, tmp_path, "profiles")  # any command: recovery runs before each
        _, err = later.communicate(timeout=60)
        assert later.returncode == 0, err
        assert f"removed the checkout a killed bootlab (pid {proc.pid}) left of {repo}" in err
        assert "stopped its build" in err
    assert gone(child), "the build's own child process outlived it"
    assert snapshot(repo) == before
    assert list((tmp_path / "cache" / "checkouts").iterdir()) == []


def test_a_failing_build_is_a_build_error_and_changes_nothing(
    image_project: ImageProject, capsys: pytest.CaptureFixture[str]
) -> None:
    config, repo = image_project(["a", "b"], script="echo compiling; echo 'error: no' >&2; exit 7\n")
    before = snapshot(repo)
    assert main(["build", "sim", "--rev", "HEAD~1", "--config", str(config), "-q"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "the build failed (exit 7)" in err and ": error: no; log: " in err
    log = Path(err.rsplit("log: ", 1)[1])
    assert log.read_text() == "compiling\nerror: no\n"
    assert snapshot(repo) == before
    # a trial at that revision boots nothing and says why, with the same exit code
    assert main(["trial", "sim", "--rev", "HEAD~1", "-n", "2", "--config", str(config), "-q"]) == 3
    assert "build failed" in capsys.readouterr().err


@pytest.mark.parametrize("users", [None, "logfire"])
def test_the_build_command_does_not_inherit_what_bootlab_set_for_itself(
    image_project: ImageProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, users: str | None
) -> None:
    """bootlab turns pydantic's plugin scan off for itself; the user's build may run tools that use plugins."""
    from bootlab import environ

    monkeypatch.setattr(environ, "_OWN", set())
    if users is None:
        monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    else:
        monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", users)
    script = 'echo "plugins off: ${PYDANTIC_DISABLE_PLUGINS-unset}"\n' + SIM_BUILD
    config, _repo = image_project(["a"], script=script)
    assert main(["build", "sim", "--config", str(config), "--json", "-q"]) == 0
    assert os.environ["PYDANTIC_DISABLE_PLUGINS"] == (users or "__all__")  # bootlab's own process: off
    log = Path(json.loads(capsys.readouterr().out)["log"])
    assert f"plugins off: {users or 'unset'}\n" in log.read_text()


def test_build_in_place_and_of_a_revision(image_project: ImageProject, capsys: pytest.CaptureFixture[str]) -> None:
    config, repo = image_project(["isb-barriers", "dsb-wfi", "icache-fix"])
    assert main(["build", "sim", "--config", str(config), "--json", "-q"]) == 0
    here = json.loads(capsys.readouterr().out)
    assert here["outputs"] == {"out/initrd": str(repo / "out" / "initrd")}
    assert (repo / "out" / "initrd").read_text() == "icache-fix\n"
    assert here["revision"]["commit"] == commits(repo)[-1] and here["revision"]["branch"] == "main"
    before = snapshot(repo)
    assert main(["build", "sim", "--rev", "HEAD~2", "--config", str(config), "--json", "-q"]) == 0
    old = json.loads(capsys.readouterr().out)
    assert Path(old["outputs"]["out/initrd"]).read_text() == "isb-barriers\n"
    assert old["revision"] == {
        "dir": str(repo),
        "commit": commits(repo)[0],
        "dirty": False,
        "branch": None,
        "rev": "HEAD~2",
        "checkout": True,
    }
    assert not old["cached"] and old["sha256"]["out/initrd"]
    assert main(["build", "sim", "--rev", commits(repo)[0], "--config", str(config), "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["cached"]
    assert snapshot(repo) == before
    assert main(["build", "sim", "--rev", "HEAD~1", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("build sim: built in ") and "out/initrd: " in text and "sha256 " in text


def test_boots_record_their_revision_and_history_filters_by_it(
    image_project: ImageProject, capsys: pytest.CaptureFixture[str]
) -> None:
    config, repo = image_project(["isb-barriers", "dsb-wfi", "icache-fix"])
    first, second, third = commits(repo)
    common = ["--config", str(config), "-n", "3", "--seed-base", "1", "-q", "--json"]
    assert main(["trial", "sim", "--rev", "HEAD~2", *common]) == 0
    t1 = json.loads(capsys.readouterr().out)
    assert t1["passed"] == 3  # isb-barriers never crashes
    assert main(["trial", "sim", "--build", *common]) == 0  # in place: the tree's HEAD, built there
    capsys.readouterr()
    (repo / "counter").write_text("edited\n")  # now the tree is dirty
    assert main(["trial", "sim", *common]) == 0
    capsys.readouterr()
    assert main(["show", "b1", "--config", str(config), "--json"]) == 0
    boot = json.loads(capsys.readouterr().out)
    assert boot["revision"]["commit"] == first and boot["revision"]["rev"] == "HEAD~2"
    assert boot["revision"]["checkout"] is True
    assert main(["show", "b1", "--config", str(config)]) == 0
    assert f"revision: {first[:12]} (HEAD~2) in bootlab's build of it" in capsys.readouterr().out
    assert main(["show", "t3", "--config", str(config)]) == 0
    assert f"revision: {third[:12]}+dirty (main) in {repo}" in capsys.readouterr().out

    def listed(*args: str) -> list[str]:
        assert main(["history", "--config", str(config), "--json", *args]) == 0
        return [r["trial"] for r in json.loads(capsys.readouterr().out)]

    assert listed() == ["t3", "t2", "t1"]
    assert listed("--rev", "HEAD~2") == ["t1"]
    assert listed("--rev", third[:8]) == ["t3", "t2"]
    assert listed("--rev", second) == []
    assert listed("--since", "HEAD~1") == ["t3", "t2"]
    assert listed("--since", "HEAD~2") == ["t3", "t2", "t1"]
    assert listed("--since", "2000-01-01") == ["t3", "t2", "t1"]
    assert listed("--since", "2999-01-01") == []
    assert main(["history", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"@{third[:12]}+dirty (main)" in lines[0] and f"@{first[:12]} (HEAD~2)" in lines[2]


@pytest.mark.parametrize(
    ("argv", "edit", "message"),
    [
        (
            ["build", "nobuild"],
            ('"true", dir = "repo", outputs = ["out/initrd"]', '"true", dir = "repo", outputs = []'),
            "lists no outputs",
        ),
        (["build", "sim"], ("build = {", "xbuild = {"), "unknown key"),
        (["build", "sim", "--rev", "nope"], None, "--rev 'nope': unknown revision"),
        (["build", "sim", "--rebuild"], None, "--rebuild goes with --rev"),
        (["trial", "sim", "--rev", "HEAD", "--build", "-n", "1"], None, "give one of them"),
        (["trial", "sim", "-n", "1", "--title", "x"], None, "--title goes with --bisect-exit"),
        (
            ["build", "sim", "--rev", "HEAD"],
            ('initrd = "repo/out/initrd"', 'initrd = "repo/kernel.conf"'),
            "not a build output",
        ),
        (["build", "sim", "--rev", "HEAD"], ('dir = "repo"', 'dir = "elsewhere"'), "does not exist"),
        (["build", "sim"], ('["sh", "build.sh"]', '["no-such-builder"]'), "'no-such-builder' not found"),
    ],
)
def test_bad_build_input_is_one_line(
    tmp_path: Path,
    fake_host: Host,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    edit: tuple[str, str] | None,
    message: str,
) -> None:
    config, _ = make_bisect_project(tmp_path, ["a", "b"])
    if edit is not None:
        config.write_text(config.read_text().replace(*edit, 1))
    use_image_boots(monkeypatch, fake_host, tmp_path)
    assert main([*argv, "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_a_profile_without_build_cannot_be_built(
    tmp_path: Path, fake_host: Host, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = make_bisect_project(tmp_path, ["a"])
    config.write_text(config.read_text().split("build = {")[0].replace('initrd = "repo/out/initrd"', ""))
    use_image_boots(monkeypatch, fake_host, tmp_path)
    for argv in (
        ["build", "sim"],
        ["trial", "sim", "--rev", "HEAD", "-n", "1"],
        ["bisect", "sim", "--good", "HEAD~1", "--bad", "HEAD"],
    ):
        assert main([*argv, "--config", str(config)]) == 2
        err = capsys.readouterr().err.strip()
        assert "profile sim has no build table" in err and len(err.splitlines()) == 1


def test_rev_needs_a_git_repository(
    tmp_path: Path, fake_host: Host, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, repo = make_bisect_project(tmp_path, ["a"])
    import shutil

    shutil.rmtree(repo / ".git")
    use_image_boots(monkeypatch, fake_host, tmp_path)
    assert main(["build", "sim", "--rev", "HEAD", "--config", str(config)]) == 2
    assert "is not in a git repository" in capsys.readouterr().err


def test_compare_two_revisions_and_a_matrix_at_one(
    image_project: ImageProject, capsys: pytest.CaptureFixture[str]
) -> None:
    config, repo = image_project(["isb-barriers", "dsb-wfi", "icache-fix"])
    before = snapshot(repo)
    first, second, third = commits(repo)
    argv = ["compare", "sim", "--a-rev", "HEAD~2", "--b-rev", "HEAD", "-n", "12", "--seed-base", "2", "-q"]
    assert main([*argv, "--config", str(config), "--json"]) == 0
    c = json.loads(capsys.readouterr().out)
    assert c["a"]["label"] == "sim@HEAD~2" and c["b"]["label"] == "sim@HEAD"
    assert c["a"]["passed"] == 12 and c["b"]["passed"] < 6  # isb-barriers vs icache-fix
    assert main(["show", c["a"]["trial"], "--config", str(config), "--json"]) == 0
    assert [r["commit"] for r in json.loads(capsys.readouterr().out)["revisions"]] == [first]
    assert main(["show", c["b"]["trial"], "--config", str(config), "--json"]) == 0
    assert [r["commit"] for r in json.loads(capsys.readouterr().out)["revisions"]] == [third]
    axis = ["--axis", "cpu=cortex-a72,max"]
    assert main(["matrix", "sim", "--rev", "HEAD~1", *axis, "-n", "4", "--config", str(config), "-q", "--json"]) == 0
    cells = json.loads(capsys.readouterr().out)["cells"]
    assert cells[0]["mark"] == "pass"  # cortex-a72: no build crashes
    for cell in cells:
        assert main(["show", cell["trial"], "--config", str(config), "--json"]) == 0
        assert [r["commit"] for r in json.loads(capsys.readouterr().out)["revisions"]] == [second]
    assert snapshot(repo) == before
