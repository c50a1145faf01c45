"""The cluster's pure parts, without a cluster: addresses and settings, placement, files, worker resources; and
the client's bookkeeping against a fake Dask client."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bootlab import __version__
from bootlab.cluster.config import ClusterConfig, cluster_config, normalise_address, warn_if_exposed
from bootlab.cluster.files import FileCache, Hasher, boot_files, project_packs, safe_name
from bootlab.cluster.resources import SLOTS, WorkerView, capacity, host_resources, parse_resources, place
from bootlab.errors import InfraError, UsageError
from bootlab.host import Host, as_dict, from_dict
from bootlab.profile.loader import Project, load_project
from bootlab.profile.model import Profile
from bootlab.verdict import Verdict
from prereq import need_module

# -- addresses and settings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8786", "tcp://127.0.0.1:8786"),
        ("tcp://lab", "tcp://lab:8786"),
        ("tls://lab.example:9000", "tls://lab.example:9000"),
        ("tcp://[::1]:8786", "tcp://[::1]:8786"),
    ],
)
def test_addresses_are_normalised(text: str, expected: str) -> None:
    assert normalise_address(text, "--cluster") == expected


@pytest.mark.parametrize("text", ["", "ftp://lab:8786", "tcp://lab:port", "tcp://lab:8786/path", "tcp://:8786"])
def test_bad_addresses_are_one_line(text: str) -> None:
    with pytest.raises(UsageError, match="--cluster") as info:
        normalise_address(text, "--cluster")
    assert "\n" not in str(info.value) and "tcp://HOST:8786" in str(info.value)


def _project(tmp_path: Path, body: str) -> Project:
    (tmp_path / "bootlab.toml").write_text(body)
    return load_project(tmp_path / "bootlab.toml")


def test_flag_wins_over_env_over_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _project(tmp_path, 'cluster = "tcp://from-toml:1"\n')
    monkeypatch.delenv("BOOTLAB_CLUSTER", raising=False)
    config = cluster_config(None, project)
    assert config is not None and config.address == "tcp://from-toml:1" and "bootlab.toml" in config.source
    monkeypatch.setenv("BOOTLAB_CLUSTER", "tls://from-env:2")
    assert cluster_config(None, project) == ClusterConfig("tls://from-env:2", "$BOOTLAB_CLUSTER")
    assert cluster_config("tcp://flag:3", project) == ClusterConfig("tcp://flag:3", "--cluster")
    assert cluster_config("local", project) is None  # --cluster local boots here whatever the others say


def test_no_cluster_anywhere_means_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOOTLAB_CLUSTER", raising=False)
    assert cluster_config(None, _project(tmp_path, "")) is None


def test_cluster_table_with_tls_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOOTLAB_CLUSTER", raising=False)
    for name in ("ca.pem", "me.pem", "me.key"):
        (tmp_path / name).write_text("x")
    body = '[cluster]\naddress = "tls://lab:8786"\ntls-ca-file = "ca.pem"\ntls-cert = "me.pem"\ntls-key = "me.key"\n'
    config = cluster_config(None, _project(tmp_path, body))
    assert config is not None and config.tls is not None
    assert config.tls.ca_file == str(tmp_path / "ca.pem")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[cluster]\naddress = "tls://lab"\ntls-ca-file = "ca.pem"\n', "add tls-cert, tls-key"),
        ('[cluster]\naddress = "tls://lab"\ntls-ca-file = "no.pem"\ntls-cert = "a"\ntls-key = "b"\n', "not found"),
        ('[cluster]\naddres = "tls://lab"\n', "unknown key `addres`"),
        ("cluster = 8786\n", "must be an address string"),
        ('cluster = "udp://lab:1"\n', "bootlab speaks tcp:// and tls://"),
    ],
)
def test_bad_cluster_settings_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str
) -> None:
    monkeypatch.delenv("BOOTLAB_CLUSTER", raising=False)
    with pytest.raises(UsageError, match=message) as info:
        cluster_config(None, _project(tmp_path, body))
    assert "\n" not in str(info.value)


def test_tls_without_certificates_says_where_to_put_them(monkeypatch: pytest.MonkeyPatch) -> None:
    need_module("distributed", "needs Dask: pip install 'bootlab[cluster]' (make setup installs it)")
    for var in ("CA_FILE", "CLIENT__CERT", "CLIENT__KEY"):
        monkeypatch.delenv(f"DASK_DISTRIBUTED__COMM__TLS__{var}", raising=False)
    with pytest.raises(UsageError, match="no certificates are set"):
        ClusterConfig("tls://lab:8786", "--cluster").security()


def test_non_local_plain_tcp_is_warned_about() -> None:
    out = io.StringIO()
    warn_if_exposed(ClusterConfig("tcp://192.0.2.7:8786", "--cluster"), out)
    assert "unencrypted and unauthenticated" in out.getvalue() and "tls://" in out.getvalue()
    for quiet in ("tcp://127.0.0.1:8786", "tcp://localhost:8786", "tcp://[::1]:8786", "tls://192.0.2.7:8786"):
        out = io.StringIO()
        warn_if_exposed(ClusterConfig(quiet, "--cluster"), out)
        assert out.getvalue() == "", quiet


# -- resources and placement --------------------------------------------------------------------------------------


def _profile(**fields: object) -> Profile:
    base: dict[str, object] = {"name": "p", "arch": "aarch64", "machine": "virt", "pack": ["linux"]}
    return Profile.model_validate({**base, **fields})


def _worker(name: str, *offers: str, slots: int = 1) -> WorkerView:
    resources = {**dict.fromkeys(offers, float(slots)), SLOTS: float(slots)}
    return WorkerView(f"tcp://127.0.0.1:{len(name)}{ord(name[-1])}", name, resources)


def test_worker_resources_come_from_the_probe(fake_host: Host) -> None:
    assert host_resources(fake_host, 4) == {"aarch64-tcg": 4, "x86_64-kvm": 4, "x86_64-tcg": 4, SLOTS: 4}


def test_hvf_preferred_runs_only_on_hvf_workers() -> None:
    workers = [_worker("mac", "aarch64-hvf", "aarch64-tcg"), _worker("linux", "aarch64-tcg")]
    placement = place(_profile(accel=["hvf", "kvm", "tcg"]), workers, "tcp://s:1")
    assert placement.resource == "aarch64-hvf" and [w.name for w in placement.workers] == ["mac"]
    assert placement.task_resources() == {"aarch64-hvf": 1, SLOTS: 1}
    tcg = place(_profile(accel=["kvm", "tcg"]), workers, "tcp://s:1")
    assert tcg.resource == "aarch64-tcg" and len(tcg.workers) == 2 and "no worker offers aarch64-kvm" in tcg.reason


def test_no_worker_offering_the_accelerator_is_one_infra_line() -> None:
    with pytest.raises(InfraError, match=r"no worker of the cluster at tcp://s:1 offers aarch64-hvf") as info:
        place(_profile(accel=["hvf"]), [_worker("linux", "aarch64-tcg", "x86_64-tcg")], "tcp://s:1")
    assert "aarch64-tcg (1 worker)" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(InfraError, match="has no bootlab workers; start `bootlab worker --scheduler tcp://s:1`"):
        place(_profile(), [], "tcp://s:1")


def test_a_boot_asks_for_its_vcpus_up_to_the_largest_worker() -> None:
    workers = [_worker("small", "aarch64-tcg", slots=2), _worker("big", "aarch64-tcg", slots=8)]
    four = place(_profile(accel=["tcg"], smp=4), workers, "s")
    assert four.slots == 4 and [w.name for w in four.workers] == ["big"]
    assert place(_profile(accel=["tcg"], smp=16), workers, "s").slots == 8
    assert capacity([place(_profile(accel=["tcg"]), workers, "s")]) == 10
    assert capacity([place(_profile(accel=["tcg"], smp=4), workers, "s")]) == 2


def test_extra_resources_parse_like_dask_workers() -> None:
    assert parse_resources("x86_64-kvm=1, gpu=2") == {"x86_64-kvm": 1, "gpu": 2}
    for bad in ("kvm", "kvm=", "kvm=-1", "=2", "kvm=two"):
        with pytest.raises(UsageError, match="expected NAME=N"):
            parse_resources(bad)


def test_a_workers_probe_round_trips(fake_host: Host) -> None:
    assert from_dict(as_dict(fake_host)) == fake_host


# -- files --------------------------------------------------------------------------------------------------------


def test_profile_files_and_worker_paths(tmp_path: Path) -> None:
    profile = _profile(
        kernel="/k/vmlinuz",
        initrd="/k/initrd",
        drives=[{"file": "/d/a.img"}, {"file": "/d/b.img"}],
        firmware={"code": "/fw/CODE.fd", "vars": "edk2-arm-vars.fd"},
        symbols="/k/vmlinux",
    )
    assert profile.files() == {
        "kernel": "/k/vmlinuz",
        "initrd": "/k/initrd",
        "drive0": "/d/a.img",
        "drive1": "/d/b.img",
        "firmware.code": "/fw/CODE.fd",  # a firmware *name* is resolved by each host, not shipped
    }
    moved = profile.with_files({"kernel": "/c/1", "drive1": "/c/2", "firmware.code": "/c/3", "symbols": "/c/4"})
    assert (moved.kernel, moved.initrd, moved.symbols) == ("/c/1", "/k/initrd", "/c/4")
    assert [d.file for d in moved.drives] == ["/d/a.img", "/c/2"]
    assert moved.firmware is not None and (moved.firmware.code, moved.firmware.vars) == ("/c/3", "edk2-arm-vars.fd")


def test_boot_files_are_hashed_once(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"kernel bytes")
    hasher = Hasher()
    refs = boot_files(_profile(kernel=str(kernel), initrd=str(tmp_path / "missing")), hasher)
    assert [(r.role, r.sha256, r.size) for r in refs] == [("kernel", hashlib.sha256(b"kernel bytes").hexdigest(), 12)]


def test_worker_uses_same_path_same_content_else_its_cache(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache")
    mine = tmp_path / "disk.img"
    mine.write_bytes(b"A" * 100)
    sha_a = hashlib.sha256(b"A" * 100).hexdigest()
    sha_b = hashlib.sha256(b"B" * 100).hexdigest()
    assert cache.resolve(str(mine), sha_a) == str(mine)
    assert cache.resolve(str(mine), sha_b) is None  # same path, other content: not used
    assert not cache.write_chunk(sha_b, "../../disk.img", "t1", 0, b"B" * 60, final=False)
    assert cache.write_chunk(sha_b, "../../disk.img", "t1", 60, b"B" * 40, final=True)
    got = cache.resolve(str(mine), sha_b)
    assert got == str(tmp_path / "cache" / sha_b / "disk.img") and Path(got).read_bytes() == b"B" * 100


def test_a_corrupted_transfer_is_not_cached(tmp_path: Path) -> None:
    cache = FileCache(tmp_path)
    sha = hashlib.sha256(b"good").hexdigest()
    with pytest.raises(ValueError, match="does not match"):
        cache.write_chunk(sha, "k", "t", 0, b"evil", final=True)
    assert cache.cached(sha) is None
    with pytest.raises(ValueError, match="not a sha256"):
        cache.write_chunk("../etc", "k", "t", 0, b"x", final=True)
    assert safe_name("/a/../.hidden name") == "hidden_name"


def test_project_packs_travel_as_text(tmp_path: Path) -> None:
    (tmp_path / "packs").mkdir()
    (tmp_path / "packs" / "mine.toml").write_text('extends = "linux"\n')
    packs = project_packs(tmp_path)
    assert packs == {"mine.toml": 'extends = "linux"\n'}
    where = FileCache(tmp_path / "cache").packs_dir(packs)
    assert where is not None and (where / "packs" / "mine.toml").read_text() == 'extends = "linux"\n'
    assert FileCache(tmp_path / "cache").packs_dir(packs) == where  # one directory per distinct set


# -- CLI ----------------------------------------------------------------------------------------------------------


def _bootlab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bootlab", *args], capture_output=True, text=True, timeout=60, env=env)


def test_bad_cluster_flag_is_exit_2_before_anything_runs(tmp_path: Path) -> None:
    r = _bootlab("trial", "linux-aarch64", "-n", "2", "--cluster", "ftp://x:1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "bootlab speaks tcp:// and tls://" in r.stderr


def test_worker_bad_input_is_exit_2(tmp_path: Path) -> None:
    r = _bootlab("worker", "--scheduler", "tcp://127.0.0.1:1", "--slots", "0")
    assert r.returncode == 2 and "at least 1 slot" in r.stderr
    r = _bootlab("worker", "--scheduler", "tcp://127.0.0.1:1", "--resources", "kvm")
    assert r.returncode == 2 and "expected NAME=N" in r.stderr
    r = _bootlab("worker", "--scheduler", "tcp://127.0.0.1:1", "--tls-ca-file", "ca.pem")
    assert r.returncode == 2 and "needs all of --tls-ca-file, --tls-cert and --tls-key" in r.stderr


def test_without_the_extra_the_options_say_what_to_install(tmp_path: Path) -> None:
    # a `distributed` that cannot be imported, as without `pip install 'bootlab[cluster]'`
    (tmp_path / "distributed.py").write_text("raise ImportError('not installed')\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    r = _bootlab("trial", "linux-aarch64", "-n", "2", "--cluster", "tcp://127.0.0.1:1", env=env)
    assert r.returncode == 2 and "pip install 'bootlab[cluster]'" in r.stderr and r.stderr.count("\n") == 1
    r = _bootlab("worker", "--scheduler", "tcp://127.0.0.1:1", env=env)
    assert r.returncode == 2 and "bootlab worker needs Dask distributed" in r.stderr


def test_unreachable_scheduler_is_exit_3(tmp_path: Path) -> None:
    need_module("distributed", "needs Dask: pip install 'bootlab[cluster]' (make setup installs it)")
    r = _bootlab("trial", "linux-aarch64", "-n", "2", "--cluster", "tcp://127.0.0.1:9")
    assert r.returncode == 3, r.stderr
    assert r.stderr.startswith("bootlab: cannot reach the scheduler at tcp://127.0.0.1:9 (--cluster)")
    assert r.stderr.count("\n") == 1


def test_a_cluster_boot_is_stored_with_the_workers_host_and_qemu(tmp_path: Path, fake_host: Host) -> None:
    from bootlab.store.db import Store
    from bootlab.verdict import Verdict, WorkerInfo

    worker = WorkerInfo(name="mini", host="mini.lan", address="tls://10.0.0.2:4000", os="darwin", arch="aarch64",
                        qemu="/opt/homebrew/bin/qemu-system-aarch64", qemu_version="9.1.0", lost=["w3"])  # fmt: skip
    with Store(tmp_path) as store:
        profile = _profile()
        local = store.record_boot(Verdict(outcome="pass", accel="tcg"), profile, fake_host)
        remote = store.record_boot(Verdict(outcome="pass", accel="hvf", worker=worker), profile, fake_host)
        rows = {r["id"]: r for r in store.db.execute("SELECT id, host, qemu_version, verdict FROM boots")}
    assert json.loads(rows[local]["host"])["qemu_version"] == "7.2.22"
    host = json.loads(rows[remote]["host"])
    assert (host["name"], host["worker"], host["os"], host["qemu_version"]) == ("mini.lan", "mini", "darwin", "9.1.0")
    assert rows[remote]["qemu_version"] == "9.1.0"
    assert json.loads(rows[remote]["verdict"])["worker"]["lost"] == ["w3"]


def test_bench_cluster_reads_a_trial_result_by_its_fields(tmp_path: Path, fake_host: Host) -> None:
    """bench/cluster.py's run() on a simulated lab: it reads TrialResult's typed fields (it indexed it like the
    dict it once was; mypy now checks bench/ too)."""
    import importlib.util

    from test_trial_support import make_lab

    path = Path(__file__).resolve().parents[2] / "bench" / "cluster.py"
    spec = importlib.util.spec_from_file_location("bench_cluster", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    per_minute, trial = bench.run(make_lab(tmp_path, fake_host), "sim", [], 3, 1)
    assert per_minute > 0 and trial == "t1"


# -- the client's bookkeeping, against a fake Dask client (tests/e2e: a real cluster) -----------------------------


class _FakeFuture:
    def __init__(self, key: str, result: asyncio.Future[Any]) -> None:
        self.key = key
        self._result = result

    async def result(self) -> dict[str, Any]:
        value = await self._result
        if isinstance(value, BaseException):  # how Dask's future reports a cancelled task
            raise value
        return dict(value)


class _FakeScheduler:
    def __init__(self, client: _FakeClient) -> None:
        self.client = client

    async def identity(self) -> dict[str, Any]:
        return {"workers": {w.address: {"name": w.name, "resources": w.resources} for w in self.client.pool}}


class _FakeClient:
    """What ClusterRun uses of ``distributed.Client``: workers from ``pool`` (all bootlab, with the probe of
    ``host``); a boot runs on the first worker it may go to, and passes unless that worker is in ``broken`` (an
    infra-error there, as a worker without QEMU gives); ``hold`` keeps every boot running until the test ends it."""

    def __init__(self, pool: list[WorkerView], host: Host, *, broken: tuple[str, ...] = (), hold: bool = False):
        self.pool, self.host, self.broken, self.hold = pool, host, broken, hold
        self.status = "running"
        self.scheduler = _FakeScheduler(self)
        self.submitted: list[tuple[str, list[str]]] = []  # (key, the workers it may run on)
        self.resources: list[dict[str, float]] = []  # what each submitted boot asked for
        self.futures: dict[str, asyncio.Future[Any]] = {}
        self.cancelled: list[tuple[str, str]] = []  # (key, reason)
        self.on_start: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> _FakeClient:  # distributed.Client(address, ...)
        return self

    def __await__(self) -> Any:
        async def connected() -> _FakeClient:
            return self

        return connected().__await__()

    def subscribe_topic(self, topic: str, handler: Any) -> None:
        self.on_start = handler

    async def run(self, fn: Any, *args: Any, workers: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        addresses = workers or [w.address for w in self.pool]
        if fn.__name__ == "describe":
            return {a: {"bootlab": __version__, "host": a, "probe": as_dict(self.host)} for a in addresses}
        if fn.__name__ == "have_files":
            return {a: [True] * len(args[0]) for a in addresses}
        return dict.fromkeys(addresses)

    def submit(self, fn: Any, request: dict[str, Any], *, key: str, workers: list[str], **kwargs: Any) -> Any:
        from bootlab.lab.simulate import sim_verdict

        self.submitted.append((key, list(workers)))
        self.resources.append(dict(kwargs.get("resources") or {}))
        result = self.futures[key] = asyncio.get_running_loop().create_future()
        if not self.hold:
            name = next(w.name for w in self.pool if w.address == workers[0])
            seed = request["profile"]["seed"]
            verdict = (
                Verdict(outcome="infra-error", seed=seed, title="qemu-system-aarch64 not found")
                if name in self.broken
                else sim_verdict(seed, False, False)
            )
            worker = {"name": name, "host": name, "address": workers[0]}
            result.set_result({"verdict": verdict.model_dump(mode="json"), "worker": worker, "log_gz": None})
        return _FakeFuture(key, result)

    async def cancel(self, futures: list[Any], reason: str = "") -> None:
        from distributed.client import FutureCancelledError

        for f in futures:
            self.cancelled.append((f.key, reason))
            if not self.futures[f.key].done():
                self.futures[f.key].set_result(FutureCancelledError(f.key, reason))

    async def close(self) -> None:
        pass


def _fake_cluster(monkeypatch: pytest.MonkeyPatch, client: _FakeClient) -> ClusterConfig:
    need_module("distributed", "needs Dask: pip install 'bootlab[cluster]' (make setup installs it)")
    import distributed

    monkeypatch.setattr(distributed, "Client", client)
    return ClusterConfig("tcp://127.0.0.1:8786", "--cluster")


def test_a_worker_that_cannot_boot_a_profile_stays_spared_in_later_runs(
    tmp_path: Path, fake_host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each run() (a bisect's every batch) is a new ClusterRun: what the first learnt (this worker has no QEMU;
    which accelerator the profile asks for) holds for the next, which never sends a boot to that worker."""
    from test_trial_support import make_project

    from bootlab.cluster.lab import ClusterLab
    from bootlab.lab.lab import ArmSpec
    from bootlab.store.db import Store

    broken, good = _worker("broken", "aarch64-tcg"), _worker("good", "aarch64-tcg")
    client = _FakeClient([broken, good], fake_host, broken=("broken",))
    config = _fake_cluster(monkeypatch, client)
    with Store(tmp_path / "store") as store:
        lab = ClusterLab(load_project(make_project(tmp_path)), fake_host, store, cluster=config, quiet=True)
        arm = ArmSpec("sim", ['accel=["kvm", "tcg"]'])
        first = lab.trial(arm, n=3, jobs=1, seed_base=1)
        assert first.summary.excluded == 1 and first.summary.boots == 2
        assert client.submitted[0][1][0] == broken.address  # it went to the broken worker once...
        assert all(ws == [good.address] for _, ws in client.submitted[1:])  # ...and then never again
        client.submitted.clear()
        second = lab.trial(arm, n=3, jobs=1, seed_base=2)
        assert second.summary.excluded == 0 and second.summary.boots == 3
        assert len(client.submitted) == 3 and all(broken.address not in ws for _, ws in client.submitted)
        client.resources.clear()
        client.pool.append(_worker("kvm", "aarch64-kvm", "aarch64-tcg"))  # joins: a fresh placement would pick kvm
        lab.trial(arm, n=2, jobs=1, seed_base=3)
    assert len(client.resources) == 2
    assert all("aarch64-tcg" in r and "aarch64-kvm" not in r for r in client.resources)  # one accelerator throughout


def test_a_boot_whose_worker_dies_twice_is_an_infra_error_not_a_third_run(
    tmp_path: Path, fake_host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each start of a boot on a worker is an event; a second one means the first worker died and Dask re-ran it,
    a third means the second died too: the task is cancelled, and the boot is an infra-error naming both."""
    from bootlab.cluster.client import LOST_TWICE, ClusterRun

    workers = [_worker(name, "aarch64-tcg") for name in ("w1", "w2", "w3")]
    client = _FakeClient(workers, fake_host, hold=True)
    config = _fake_cluster(monkeypatch, client)

    async def scenario() -> Verdict:
        async with ClusterRun(config) as run:
            boot = asyncio.ensure_future(run.boot(_profile(accel=["tcg"], seed=5), tmp_path / "boot.log"))
            while not client.submitted:
                await asyncio.sleep(0.01)
            key = client.submitted[0][0]
            for i, w in enumerate(workers):
                client.on_start((0.0, {"key": key, "worker": w.address, "name": w.name}))
                await asyncio.sleep(0.05)
                assert bool(client.cancelled) == (i == 2)  # the first two starts are a run and its one re-run
            return await asyncio.wait_for(boot, 10)

    verdict = asyncio.run(scenario())
    assert [reason for _, reason in client.cancelled] == [LOST_TWICE]
    assert verdict.outcome == "infra-error" and verdict.seed == 5
    assert verdict.title == "cluster: its worker died twice (w1, w2); not run a third time"
