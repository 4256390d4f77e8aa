"""Emulated device profiles and their assignment to clients (SPEC §5, "Device profiles").

File format (YAML), e.g. ``jobs/devices/paper.yaml``::

    server:
      mhz: 42000
      flops_per_cycle: 16
      link_bytes_per_s: 1000000000
    clients:
      device1: {mhz: 480, flops_per_cycle: 1, link_bytes_per_s: 50000000}
      ...

Client profiles keep the order in which the file lists them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import seeding

_FIELDS = ("mhz", "flops_per_cycle", "link_bytes_per_s")


@dataclass(frozen=True)
class DeviceProfile:
    """One emulated device.

    Attributes
    ----------
    name : profile name, e.g. ``"device3"`` or ``"server"``.
    mhz : clock in MHz.
    flops_per_cycle : FLOPs per clock cycle.
    link_bytes_per_s : bandwidth of its link to rank 0, bytes/s.
    """

    name: str
    mhz: float
    flops_per_cycle: float
    link_bytes_per_s: float

    def __post_init__(self):
        for field in _FIELDS:
            value = getattr(self, field)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"device {self.name!r}: {field} must be a positive number, got {value!r}")

    @property
    def flops_per_s(self) -> float:
        """Throughput in FLOP/s: ``mhz * 1e6 * flops_per_cycle``."""
        return self.mhz * 1e6 * self.flops_per_cycle


def _profile(name: str, spec) -> DeviceProfile:
    if not isinstance(spec, dict):
        raise ValueError(f"device {name!r}: expected a mapping with {', '.join(_FIELDS)}")
    missing = [f for f in _FIELDS if f not in spec]
    unknown = sorted(set(spec) - set(_FIELDS))
    if missing or unknown:
        raise ValueError(f"device {name!r}: missing {missing}, unknown {unknown}; fields are {', '.join(_FIELDS)}")
    try:
        values = {f: float(spec[f]) for f in _FIELDS}  # YAML reads "50e6" as a string; accept it
    except (TypeError, ValueError):
        raise ValueError(f"device {name!r}: {', '.join(_FIELDS)} must be numbers, got {spec}") from None
    return DeviceProfile(str(name), **values)


def load_devices(path: str | Path) -> tuple[list[DeviceProfile], DeviceProfile]:
    """Read client profiles and the server profile from a YAML file (format in the module doc).

    Returns
    -------
    (clients, server) : list of ``DeviceProfile`` in file order, and the server's profile.

    Raises
    ------
    FileNotFoundError : no such file.
    ValueError : no ``server`` or empty ``clients`` section, or a malformed profile.
    """
    import yaml  # rank 0 reads the profiles; client ranks import this module without PyYAML

    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict) or "server" not in data or not data.get("clients"):
        raise ValueError(f"{path}: need a 'server' profile and a non-empty 'clients' mapping")
    if not isinstance(data["clients"], dict):
        raise ValueError(f"{path}: 'clients' must map profile names to profiles")
    clients = [_profile(name, spec) for name, spec in data["clients"].items()]
    return clients, _profile("server", data["server"])


def assign_profiles(n_clients: int, profiles: Sequence[DeviceProfile | str], seed: int) -> list[str]:
    """Profile name of every client, round-robin with a random remainder (SPEC §5).

    With K profiles, each gets ``n_clients // K`` clients; the ``n_clients % K`` left over go to
    distinct profiles drawn at random; the list is then shuffled. All draws come from
    ``seeding.rng(seed, seeding.DEVICES)``, so the same seed gives the same assignment.

    Returns
    -------
    list of ``n_clients`` profile names; element i is client i's (client ids are 0-based here).

    Raises
    ------
    ValueError : ``n_clients < 1``, no profiles, or duplicate profile names.
    """
    names = [p if isinstance(p, str) else p.name for p in profiles]
    if n_clients < 1 or not names:
        raise ValueError(f"need n_clients >= 1 and at least one profile, got {n_clients}, {len(names)}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate profile names: {names}")
    rng = seeding.rng(seed, seeding.DEVICES)
    k = len(names)
    drawn = [names[i] for i in rng.choice(k, size=n_clients % k, replace=False)]
    assigned = [n for n in names for _ in range(n_clients // k)] + drawn
    return [assigned[i] for i in rng.permutation(n_clients)]
