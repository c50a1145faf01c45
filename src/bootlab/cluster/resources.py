"""What a worker offers and what a boot needs, as Dask worker resources.

A worker advertises one resource per architecture and usable accelerator that its host probe found
(``aarch64-hvf``, ``aarch64-tcg``, ``x86_64-kvm``...; each as many as its slots) plus ``slots``, the vCPUs it lends
to boots (default: its cores). A boot task asks for one unit of its accelerator resource and ``smp`` slots (at
most the largest worker's), so a worker never runs more vCPUs at once than it lends, just as a local trial keeps
the vCPUs of its boots within the cores.

Which accelerator: the first of the profile's ``accel`` preference that *some* worker offers for its arch. Every
boot of the arm then asks for that one resource, so a profile preferring HVF runs only on HVF workers: its TCG
fallback never silently replaces it (which would mix two very different timings in one trial). No worker offering
any of them is one clear line before the first boot; Dask itself would leave such tasks pending forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bootlab.errors import InfraError, UsageError

if TYPE_CHECKING:
    from bootlab.host import Host
    from bootlab.profile.model import Profile

SLOTS = "slots"


def accel_resource(arch: str, accel: str) -> str:
    return f"{arch}-{accel}"


def host_resources(host: Host, slots: int) -> dict[str, float]:
    """The resources a worker on ``host`` advertises: every usable (arch, accelerator) and its slots."""
    offered: dict[str, float] = {
        accel_resource(arch, accel): float(slots) for arch, accels in host.accelerators.items() for accel in accels
    }
    offered[SLOTS] = float(slots)
    return offered


def parse_resources(text: str) -> dict[str, float]:
    """``NAME=N[,NAME=N]`` (or space-separated), as ``dask worker --resources`` takes them."""
    out: dict[str, float] = {}
    for item in text.replace(",", " ").split():
        name, sep, value = item.partition("=")
        try:
            amount = float(value)
        except ValueError:
            amount = -1.0
        if not sep or not name or amount <= 0:
            raise UsageError(f"--resources {text!r}: expected NAME=N items, e.g. --resources 'x86_64-kvm=1'")
        out[name] = amount
    return out


@dataclass
class WorkerView:
    """A bootlab worker as the client sees it: its Dask address, resources and what its host reported."""

    address: str
    name: str
    resources: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def slots(self) -> int:
        return max(1, int(self.resources.get(SLOTS, 1)))

    @property
    def host_name(self) -> str:
        return str(self.info.get("host") or self.name)


@dataclass
class Placement:
    """Where the boots of one profile may run: the resource they ask for and the workers offering it."""

    resource: str
    accel: str
    slots: int
    workers: list[WorkerView]
    reason: str

    def task_resources(self) -> dict[str, float]:
        return {self.resource: 1.0, SLOTS: float(self.slots)}


def offered_summary(workers: list[WorkerView]) -> str:
    counts: dict[str, int] = {}
    for w in workers:
        for name in w.resources:
            if name != SLOTS:
                counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{name} ({n} worker{'s' if n > 1 else ''})" for name, n in sorted(counts.items())) or "nothing"


def place(profile: Profile, workers: list[WorkerView], address: str) -> Placement:
    """The accelerator resource the profile's boots need on this cluster, or one line saying none offers it."""
    if not workers:
        raise InfraError(
            f"the scheduler at {address} has no bootlab workers; start `bootlab worker --scheduler {address}` "
            f"on each host that should boot"
        )
    skipped: list[str] = []
    for accel in profile.accel:
        name = accel_resource(profile.arch, accel)
        offering = [w for w in workers if w.resources.get(name, 0) > 0]
        if offering:
            slots = min(profile.smp, max(w.slots for w in offering))
            offering = [w for w in offering if w.slots >= slots]  # a worker lending fewer vCPUs never gets it
            why = f" (no worker offers {', '.join(skipped)})" if skipped else ""
            reason = f"cluster: {name} on {len(offering)} worker{'s' if len(offering) > 1 else ''}{why}"
            return Placement(resource=name, accel=accel, slots=slots, workers=offering, reason=reason)
        skipped.append(name)
    raise InfraError(
        f"no worker of the cluster at {address} offers {' or '.join(skipped)} for profile {profile.name} "
        f"(accel = {list(profile.accel)}); the workers offer {offered_summary(workers)}; start `bootlab worker` on "
        f"a host that has it, or change the profile's accel (e.g. --set accel=tcg)"
    )


def capacity(placements: list[Placement]) -> int:
    """Boots that can run at once on the workers these placements use: what the runner's ``jobs`` becomes."""
    slots_by_worker: dict[str, int] = {}
    need = min((p.slots for p in placements), default=1)
    for p in placements:
        for w in p.workers:
            slots_by_worker[w.address] = w.slots
    return max(1, sum(s // need for s in slots_by_worker.values()))
