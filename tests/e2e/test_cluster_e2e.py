"""Trials on a real Dask cluster on localhost: a `dask scheduler` and `bootlab worker` processes, real QEMU boots.

The module's cluster has two one-slot workers: w1 offers what its host probe found, w2 also advertises a fake
``x86_64-kvm`` (this machine has no KVM), which tests placement, a worker that cannot boot, and the "no worker
offers X" line. Tests that kill a worker or the scheduler start their own. Every process is started here and
stopped by its pid; none is found by name. redox-sim decides each boot from its seed alone, so the outcomes of
a distributed trial are known before it runs (seeds are assigned by the client).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from procs import alive, children_of_process, wait_dead

from bootlab.host import Host
from bootlab.lab.simulate import redox_sim_outcome
from bootlab.lab.summary import derive_seed
from bootlab.store.db import Store
from prereq import need, need_guests, requires

ROOT = Path(__file__).resolve().parents[2]
GUESTS = ROOT / "guests" / "bootlab.toml"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.e2e
need_guests()
need((BIN / "dask").exists(), "needs Dask: pip install 'bootlab[cluster]' (make setup installs it)")
need(Path("/proc").is_dir(), "needs /proc to see the workers' QEMU children")


@dataclass
class Cluster:
    """Processes started for a test, by pid; ``stop`` ends them and checks that no QEMU is left behind."""

    tmp: Path
    address: str = ""
    scheduler: subprocess.Popen[str] | None = None
    workers: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    def start_scheduler(self, *tls: str) -> str:
        info = self.tmp / "scheduler.json"
        info.unlink(missing_ok=True)
        protocol = ["--protocol", "tls"] if tls else []
        with open(self.tmp / "scheduler.log", "w") as log:
            self.scheduler = subprocess.Popen(
                [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                 "--scheduler-file", str(info), *protocol, *tls],
                stdout=subprocess.DEVNULL, stderr=log, text=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while not info.is_file() or not info.read_text().strip():
            assert self.scheduler.poll() is None, (self.tmp / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        self.address = json.loads(info.read_text())["address"]
        return self.address

    def start_worker(self, name: str, *extra: str, wrap: tuple[str, ...] = ()) -> subprocess.Popen[str]:
        log_path = self.tmp / f"{name}.log"
        with open(log_path, "w") as log:
            p = subprocess.Popen(
                [*wrap, sys.executable, "-m", "bootlab", "worker", "--scheduler", self.address, "--slots", "1",
                 "--name", name, "--cache", str(self.tmp / f"cache-{name}"), *extra],
                stdout=log, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        self.workers[name] = p
        deadline = time.monotonic() + 60
        while "joined" not in log_path.read_text():
            assert p.poll() is None and time.monotonic() < deadline, f"{name} did not join: {log_path.read_text()}"
            time.sleep(0.1)
        return p

    def qemus(self, name: str) -> list[int]:
        return children_of_process(self.workers[name].pid)

    def stop(self) -> None:
        left = {name: self.qemus(name) for name, p in self.workers.items() if p.poll() is None}
        for p in [*self.workers.values(), self.scheduler]:
            if p is not None and p.poll() is None:
                p.terminate()
        for p in [*self.workers.values(), self.scheduler]:
            if p is not None:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
        assert not any(left.values()), f"QEMU left running under the workers: {left}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start_scheduler()
        c.start_worker("w1")
        c.start_worker("w2", "--resources", "x86_64-kvm=1")
        yield c
    finally:
        c.stop()


@pytest.fixture
def own(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster of the test's own, for the faults that kill a scheduler."""
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


def bootlab(
    store: Path, *args: str, config: Path = GUESTS, timeout: float = 300, cache: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bootlab", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(store, cache),
    )


def spawn(store: Path, *args: str, config: Path = GUESTS, cache: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bootlab", *args, "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(store, cache),
    )


def _env(store: Path, cache: Path | None) -> dict[str, str]:
    """The store under the test's directory; ``cache``: where a bisect builds (its checkout and build outputs)."""
    return {**os.environ, "BOOTLAB_STORE": str(store), **({"BOOTLAB_CACHE": str(cache)} if cache else {})}


def wait_for(predicate: object, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def stored(store: Path) -> list[dict[str, object]]:
    s = Store(store)
    rows = [dict(r) for t in s.trials() for r in s.boots(t["id"])]
    for r in rows:
        r["host"] = json.loads(str(r["host"]))
        r["verdict"] = json.loads(str(r["verdict"]))
    s.close()
    return rows


def test_trial_spreads_over_the_workers_and_comes_back_as_if_local(cluster: Cluster, tmp_path: Path) -> None:
    seeds = [derive_seed(3, i) for i in range(4)]
    expected = sum(not redox_sim_outcome(s, cpu="max", build="dsb-wfi")[0] for s in seeds)
    r = bootlab(
        tmp_path, "trial", "redox-sim", "--set", "cpu=max", "--set", "vars.build=dsb-wfi", "-n", "4",
        "--seed-base", "3", "--json", "--cluster", cluster.address,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["boots"], out["passed"], out["excluded"]) == (4, expected, 0), out["outcomes"]
    assert "cluster: aarch64-tcg on 2 workers" in r.stderr
    assert "Traceback" not in r.stderr and "exception" not in r.stderr.lower(), r.stderr  # Dask's logs stay quiet
    boots = stored(tmp_path)
    assert sorted(int(str(b["idx"])) for b in boots) == [0, 1, 2, 3]
    assert sorted(int(str(b["seed"])) for b in boots) == sorted(seeds)  # seeds chosen here, replayable here
    assert {b["host"]["worker"] for b in boots} == {"w1", "w2"}  # type: ignore[index]
    for b in boots:
        host, worker = b["host"], b["verdict"]["worker"]  # type: ignore[index]
        assert host["qemu_version"] and host["name"] and worker["qemu_started"] >= worker["dispatched"]  # type: ignore[index]
        assert Store(tmp_path).read_log(str(b["log_path"]))  # the console log came back, compressed


def test_matrix_on_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    r = bootlab(
        tmp_path, "matrix", "linux-arm64", "--axis", "memory=512M,768M", "-n", "1", "--json",
        "--cluster", cluster.address,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    cells = json.loads(r.stdout)["cells"]
    assert [c["mark"] for c in cells] == ["pass", "pass"], [c["outcomes"] for c in cells]
    assert all(b["host"]["worker"] in ("w1", "w2") for b in stored(tmp_path))  # type: ignore[index]


def test_no_worker_offering_the_accelerator_is_one_line_before_any_boot(cluster: Cluster, tmp_path: Path) -> None:
    r = bootlab(tmp_path, "trial", "linux-arm64", "--set", "accel=hvf", "-n", "2", "--cluster", cluster.address)
    assert r.returncode == 3
    assert r.stderr.startswith(f"bootlab: no worker of the cluster at {cluster.address} offers aarch64-hvf")
    assert r.stderr.count("\n") == 1 and not stored(tmp_path)


def test_placement_never_falls_back_and_a_worker_that_cannot_boot_gets_no_more(
    cluster: Cluster, tmp_path: Path
) -> None:
    # linux-x86_64 prefers kvm: only w2 advertises x86_64-kvm (falsely), so every boot is placed there, never on
    # w1's TCG; w2 cannot really boot it (no KVM here): one infra-error from w2, then no more boots sent to it.
    r = bootlab(tmp_path, "trial", "linux-x86_64", "-n", "3", "--json", "--cluster", cluster.address)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["excluded"] == 3 and out["warning"]
    boots = stored(tmp_path)
    ran = [b for b in boots if b["verdict"]["worker"]]  # type: ignore[index]
    assert len(ran) == 1 and ran[0]["host"]["worker"] == "w2"  # type: ignore[index]
    assert "no usable accelerator" in str(ran[0]["title"])
    others = [str(b["title"]) for b in boots if b not in ran]
    assert len(others) == 2 and all(t.startswith("cluster: no worker left that can boot linux-x86_64") for t in others)


def test_a_worker_killed_mid_boot_takes_its_qemu_and_the_boot_runs_again(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker("w3")
    try:
        p = spawn(tmp_path, "trial", "redox-sim", "-n", "3", "--seed-base", "7", "--json", "--cluster", cluster.address)
        wait_for(lambda: cluster.qemus("w3"), what="a boot on w3")
        (qemu,) = cluster.qemus("w3")
        os.kill(cluster.workers["w3"].pid, signal.SIGKILL)
        assert wait_dead(qemu, 10), "w3's QEMU outlived it"
        out, err = p.communicate(timeout=300)
    finally:
        cluster.workers.pop("w3").wait(10)
    assert p.returncode == 0, err
    result = json.loads(out)
    assert (result["boots"], result["excluded"]) == (3, 0), result["outcomes"]
    boots = stored(tmp_path)
    assert sorted(int(str(b["idx"])) for b in boots) == [0, 1, 2]  # every boot once: none lost, none twice
    rerun = [b for b in boots if b["verdict"]["worker"]["lost"]]  # type: ignore[index]
    assert len(rerun) == 1 and rerun[0]["verdict"]["worker"]["lost"] == ["w3"]  # type: ignore[index]
    assert rerun[0]["host"]["worker"] in ("w1", "w2")  # type: ignore[index]


def test_ctrl_c_cancels_remote_boots_and_keeps_finished_ones(cluster: Cluster, tmp_path: Path) -> None:
    p = spawn(tmp_path, "trial", "redox-sim", "-n", "20", "--seed-base", "1", "--cluster", cluster.address)
    assert p.stderr is not None
    line = p.stderr.readline()
    while line and not line.startswith("  boot "):
        line = p.stderr.readline()
    assert " on w" in line, line  # live progress names the worker
    wait_for(lambda: cluster.qemus("w1") and cluster.qemus("w2"), what="a boot on each worker")
    qemus = cluster.qemus("w1") + cluster.qemus("w2")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "exception" not in err.lower(), err
    assert all(not alive(q) for q in qemus), "a remote QEMU survived Ctrl-C"  # stopped before the client exited
    assert not cluster.qemus("w1") and not cluster.qemus("w2")
    assert "interrupted" in out
    s = Store(tmp_path)
    (trial,) = s.trials()
    assert trial["status"] == "interrupted" and 1 <= len(s.boots(trial["id"])) < 20


def test_scheduler_gone_mid_trial_is_one_line_exit_3_and_keeps_finished_boots(own: Cluster, tmp_path: Path) -> None:
    own.start_scheduler()
    own.start_worker("w4")
    p = spawn(tmp_path, "trial", "redox-sim", "-n", "10", "--seed-base", "1", "--cluster", own.address)
    assert p.stderr is not None
    line = p.stderr.readline()
    while line and not line.startswith("  boot "):
        line = p.stderr.readline()
    wait_for(lambda: own.qemus("w4"), what="the second boot")
    (qemu,) = own.qemus("w4")
    assert own.scheduler is not None
    os.kill(own.scheduler.pid, signal.SIGKILL)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 3, err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and "exception" not in err.lower(), err
    assert last.startswith(f"bootlab: lost the scheduler at {own.address}") and "kept in t1" in last, err
    assert wait_dead(qemu, 20), "the worker kept booting without its scheduler"
    s = Store(tmp_path)
    (trial,) = s.trials()
    assert trial["status"] == "interrupted" and len(s.boots(trial["id"])) >= 1


def test_tls_cluster_from_bootlab_toml(own: Cluster, tmp_path: Path) -> None:
    from distributed.security import Security

    sec = Security.temporary()
    certs = {}
    for name, text in (("ca.pem", sec.tls_ca_file), ("cert.pem", sec.tls_worker_cert), ("key.pem", sec.tls_worker_key)):
        path = tmp_path / name
        path.write_text(text)
        path.chmod(0o600)
        certs[name] = str(path)
    tls = ["--tls-ca-file", certs["ca.pem"], "--tls-cert", certs["cert.pem"], "--tls-key", certs["key.pem"]]
    address = own.start_scheduler(*tls)
    assert address.startswith("tls://127.0.0.1:")
    own.start_worker("w5", *tls)
    # a project file naming the cluster and its certificates (the guests' paths made absolute)
    text = GUESTS.read_text().replace('"out/', f'"{GUESTS.parent}/out/')
    config = tmp_path / "bootlab.toml"
    config.write_text(
        f'cluster = {{ address = "{address}", tls-ca-file = "ca.pem", tls-cert = "cert.pem", tls-key = "key.pem" }}\n'
        + text
    )
    r = bootlab(tmp_path / "store", "trial", "linux-arm64", "-n", "2", "--json", config=config)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["passed"] == 2
    assert {b["host"]["worker"] for b in stored(tmp_path / "store")} == {"w5"}  # type: ignore[index]
    assert "unencrypted" not in r.stderr


def _can_hide_a_directory() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_hide_a_directory(), reason="needs `unshare --mount` (root) to give a worker its own view")
def test_files_the_worker_lacks_are_sent_once_and_cached(own: Cluster, tmp_path: Path) -> None:
    # the kernel and initrd live in a directory that the worker cannot see (a tmpfs over it in its own mount
    # namespace), as on a host without the client's filesystem: the client must send them
    images = tmp_path / "images"
    images.mkdir()
    for name in ("vmlinuz", "initrd.cpio.gz"):
        shutil.copy(GUESTS.parent / "out" / "linux-arm64" / name, images / name)
    own.start_scheduler()
    hide = f'mount -t tmpfs tmpfs {images} && exec "$@"'
    own.start_worker("w6", wrap=("unshare", "--mount", "--propagation", "private", "sh", "-c", hide, "sh"))
    sets = ["--set", f"kernel={images}/vmlinuz", "--set", f"initrd={images}/initrd.cpio.gz"]
    r = bootlab(tmp_path / "store", "trial", "linux-arm64", *sets, "-n", "1", "--json", "--cluster", own.address)
    assert r.returncode == 0 and json.loads(r.stdout)["passed"] == 1, r.stderr
    cache = tmp_path / "cache-w6"
    entries = sorted(p for p in cache.glob("*/*") if p.parent.name != "packs")
    assert sorted(p.name for p in entries) == ["initrd.cpio.gz", "vmlinuz"]
    sha_of = {p.name: p.parent.name for p in entries}  # each file is cached under its sha256
    for entry in entries:
        assert entry.read_bytes() == (images / entry.name).read_bytes()
    stamps = {p: p.stat().st_mtime_ns for p in entries}
    r = bootlab(tmp_path / "store", "trial", "linux-arm64", *sets, "-n", "1", "--json", "--cluster", own.address)
    assert r.returncode == 0 and json.loads(r.stdout)["passed"] == 1, r.stderr
    assert {p: p.stat().st_mtime_ns for p in entries} == stamps  # cached: not sent again
    (first, second) = stored(tmp_path / "store")
    for boot in (first, second):
        argv = " ".join(boot["verdict"]["argv"])  # type: ignore[index]
        assert f"-kernel {cache}/" in argv and str(images) not in argv  # it booted the worker's copy
        hashes = json.loads(str(boot["images"]))
        assert (hashes["kernel"], hashes["initrd"]) == (sha_of["vmlinuz"], sha_of["initrd.cpio.gz"])


def test_compare_on_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    r = bootlab(
        tmp_path, "compare", "linux-arm64", "--a", "memory=512M", "--b", "memory=768M", "-n", "1", "--json",
        "--cluster", cluster.address,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["a"]["passed"], out["b"]["passed"]) == (1, 1)
    assert len(stored(tmp_path)) == 2


def test_a_second_worker_with_a_taken_name_is_one_line(cluster: Cluster, tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "bootlab", "worker", "--scheduler", cluster.address, "--slots", "1", "--name", "w1",
         "--cache", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"bootlab: a worker named w1 is already connected to {cluster.address}; give each worker its own --name"
    )


# -- bisect on the cluster ------------------------------------------------------------------------------------------

#: A regression at the second commit (index 1): isb-barriers never crashes under -cpu max, icache-fix 80% of boots.
#: With seed base 5 the search settles it in 10 boots (6 of the good end, 4 of the culprit; bench-sized, ~1 minute
#: through two one-slot workers).
BISECT_BUILDS = ["isb-barriers", "icache-fix", "icache-fix", "icache-fix"]
BISECT_SEED = 5
needs_cpio = requires(
    shutil.which("cpio") is not None, "the test repository's build needs cpio (make setup installs it)"
)


def bisect_project(root: Path) -> tuple[Path, Path]:
    """bootlab.toml and a repository whose build bakes each commit's redox-sim build into the initramfs (the
    project of tests/e2e/test_bisect_e2e.py)."""
    from test_bisect_e2e import LINUX, PROJECT

    from gitrepo import REDOX_BUILD, make_repo

    repo = make_repo(root / "repo", BISECT_BUILDS, script=REDOX_BUILD)
    config = root / "bootlab.toml"
    config.write_text(PROJECT.format(kernel=LINUX / "vmlinuz", initrd=LINUX / "initrd.cpio.gz"))
    return config, repo


@needs_cpio
def test_bisect_batches_fan_out_over_the_workers(
    cluster: Cluster, tmp_path: Path, fake_host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No -j: a batch is as many boots as the workers' slots (two); the answer, boot for boot, is the one the same
    bisect gives on this machine (predicted here with bootlab's port of redox-sim's decision)."""
    from bootlab.lab.bisect import BisectSpec
    from bootlab.lab.lab import Lab
    from bootlab.lab.simulate import sim_boot_fn
    from bootlab.profile.loader import load_project
    from gitrepo import commits, image_outcome, snapshot

    config, repo = bisect_project(tmp_path)
    line = commits(repo)
    before = snapshot(repo)
    args = ["bisect", "sim", "--good", "HEAD~3", "--bad", "main", "--seed-base", str(BISECT_SEED), "--json"]
    r = bootlab(tmp_path / "store", *args, "--cluster", cluster.address, config=config, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "Traceback" not in r.stderr and "exception" not in r.stderr.lower(), r.stderr
    assert "cluster: aarch64-tcg on 2 workers" in r.stderr
    assert out["decision"] == "found" and out["culprit"]["commit"] == line[1] and out["posterior"] >= 0.95
    assert snapshot(repo) == before and list((tmp_path / "cache" / "checkouts").iterdir()) == []

    monkeypatch.setenv("BOOTLAB_CACHE", str(tmp_path / "cache"))  # the builds are there already
    with Store(tmp_path / "predicted") as store:
        lab = Lab(load_project(config), fake_host, store, boot_fn=sim_boot_fn(image_outcome))
        spec = BisectSpec("sim", [], good="HEAD~3", bad="main", jobs=2, seed_base=BISECT_SEED)
        predicted = lab.bisect(spec)
    assert [(c["commit"], c["boots"], c["symptom"], c["clean"]) for c in out["commits"]] == [
        (c["commit"], c["boots"], c["symptom"], c["clean"]) for c in predicted["commits"]
    ]
    assert out["boots"] == predicted["boots"] == 10
    boots = stored(tmp_path / "store")
    assert len(boots) == 10 and {b["host"]["worker"] for b in boots} == {"w1", "w2"}  # type: ignore[index]
    by_commit = {json.loads(str(b["revision"]))["commit"] for b in boots}
    assert by_commit == {line[0], line[1]}  # each boot records the commit it booted
    lines = [x for x in r.stderr.splitlines() if " boot #" in x]
    assert len(lines) == 10 and all(" on w1:" in x or " on w2:" in x for x in lines), r.stderr


@needs_cpio
def test_scheduler_gone_mid_bisect_is_one_line_exit_3_and_keeps_it_resumable(own: Cluster, tmp_path: Path) -> None:
    from gitrepo import snapshot

    own.start_scheduler()
    own.start_worker("w7")
    config, repo = bisect_project(tmp_path)
    before = snapshot(repo)
    args = ["bisect", "sim", "--good", "HEAD~3", "--bad", "main", "--seed-base", str(BISECT_SEED), "-j", "2"]
    p = spawn(tmp_path / "store", *args, "--cluster", own.address, config=config, cache=tmp_path / "cache")
    wait_for(lambda: own.qemus("w7"), what="the first boot on w7")
    (qemu,) = own.qemus("w7")
    assert own.scheduler is not None
    os.kill(own.scheduler.pid, signal.SIGKILL)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 3, err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and "exception" not in err.lower(), err
    assert last.startswith(f"bootlab: lost the scheduler at {own.address}"), err
    assert last.endswith("finished boots are kept in s1 (`bootlab bisect --resume s1` carries on)"), err
    assert wait_dead(qemu, 20), "the worker kept booting without its scheduler"
    assert snapshot(repo) == before and list((tmp_path / "cache" / "checkouts").iterdir()) == []
    s = Store(tmp_path / "store")
    (row,) = s.bisects()
    assert s.status_of(row) == "interrupted"
    s.close()
