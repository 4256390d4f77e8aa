"""Cut selection end to end: devices -> costs -> GA, and the text ``huscf-mpi cuts`` prints."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..models.architecture import DISCRIMINATOR, GENERATOR, get_architecture
from ..models.cuts import CutVector, valid_net_cuts
from .costs import BlockCosts, block_costs
from .devices import DeviceProfile, assign_profiles, load_devices
from .ga import GAConfig, GAResult, run_ga
from .latency import TERMS, latency_breakdown, latency_fitness
from .search import uniform_assignments


@dataclass
class CutSelection:
    """The outcome of ``select_cuts``.

    Attributes
    ----------
    profiles : list of N profile names, client i's at i (0-based client ids).
    cuts : list of N ``CutVector``, client i's at i.
    latency : predicted seconds per iteration of ``cuts``.
    breakdown : ``{term: seconds}`` for the four ``latency.TERMS``.
    best_uniform : (CutVector, seconds) of the best assignment giving all clients one vector.
    ga : the GA run.
    device_profiles : client profiles in file order; ``server`` the server's.
    """

    profiles: list[str]
    cuts: list[CutVector]
    latency: float
    breakdown: dict[str, float]
    best_uniform: tuple[CutVector, float]
    ga: GAResult
    device_profiles: list[DeviceProfile]
    server: DeviceProfile


def select_cuts(devices: str | Path, clients: int, seed: int = 0, width: float = 1.0, batch_size: int = 64,
                cost_mode: str = "true", config: GAConfig | None = None, architecture: str = "cgan28") -> CutSelection:
    """Assign device profiles to ``clients`` clients and choose every client's cut vector by GA.

    Profiles come from ``devices`` (YAML, see ``devices.load_devices``) and are assigned with
    ``assign_profiles(clients, ..., seed)``; costs are ``block_costs(arch, width, batch_size,
    cost_mode)``; the GA uses ``config`` (default ``GAConfig(seed=seed)``).

    Raises
    ------
    ValueError, FileNotFoundError : from the steps above.
    """
    arch = get_architecture(architecture)
    client_profiles, server = load_devices(devices)
    by_name = {p.name: p for p in client_profiles}
    used = [by_name[n] for n in assign_profiles(clients, client_profiles, seed)]
    return select_for_profiles(arch, block_costs(arch, width, batch_size, cost_mode), used, server,
                               config or GAConfig(seed=seed), device_profiles=client_profiles)


def select_for_profiles(arch, costs: dict[str, BlockCosts], used: Sequence[DeviceProfile], server: DeviceProfile,
                        config: GAConfig, device_profiles: Sequence[DeviceProfile] | None = None) -> CutSelection:
    """Run the GA for clients with profiles ``used`` (client i's at i) and ``server``.

    Shared by ``huscf-mpi cuts`` (emulated profiles from a file) and the training set-up
    (emulated or measured profiles). ``device_profiles`` orders the report's rows (default:
    the distinct profiles of ``used`` in order of appearance).
    """
    fitness = latency_fitness(costs, used, server)
    choices = [valid_net_cuts(arch.n_blocks(net), arch.pinned[net]) for net in (GENERATOR, DISCRIMINATOR)]
    # Clients with equal rates are interchangeable in the latency model: let the GA move them together.
    result = run_ga(fitness, choices, len(used), config, groups=[(p.flops_per_s, p.link_bytes_per_s) for p in used])
    vectors, latencies = uniform_assignments(fitness, choices, len(used))
    u = int(np.argmin(latencies))
    terms = latency_breakdown(result.best[None], costs, [p.flops_per_s for p in used],
                              [p.link_bytes_per_s for p in used], server.flops_per_s, server.link_bytes_per_s)[0]
    if device_profiles is None:
        device_profiles = list({p.name: p for p in used}.values())
    return CutSelection(profiles=[p.name for p in used], cuts=[CutVector.from_tuple(row) for row in result.best],
                        latency=result.best_latency, breakdown=dict(zip(TERMS, terms.tolist())),
                        best_uniform=(CutVector.from_tuple(vectors[u]), float(latencies[u])), ga=result,
                        device_profiles=list(device_profiles), server=server)


def _fmt(v: CutVector) -> str:
    return "(" + ",".join(str(x) for x in v.as_tuple()) + ")"


def format_selection(sel: CutSelection) -> str:
    """Human-readable summary of a ``CutSelection`` (what ``huscf-mpi cuts`` prints)."""
    lines = ["cut vectors (g_head, g_tail, d_head, d_tail) chosen per device profile:",
             f"  {'profile':<10} {'GFLOP/s':>8} {'link MB/s':>9} {'clients':>7}  vector x clients"]
    for prof in sel.device_profiles:
        chosen = Counter(_fmt(v) for name, v in zip(sel.profiles, sel.cuts) if name == prof.name)
        if not chosen:
            continue
        text = ", ".join(f"{vec} x {n}" for vec, n in sorted(chosen.items(), key=lambda kv: (-kv[1], kv[0])))
        lines.append(f"  {prof.name:<10} {prof.flops_per_s / 1e9:>8.2f} {prof.link_bytes_per_s / 1e6:>9.1f} "
                     f"{sum(chosen.values()):>7}  {text}")
    b = sel.breakdown
    uniform_vec, uniform_s = sel.best_uniform
    gain = 100.0 * (1.0 - sel.latency / uniform_s) if uniform_s > 0 else 0.0
    ga = sel.ga
    stop = "stopped early: no improvement" if ga.stopped_early else "ran to the limit"
    lines += [
        f"predicted seconds per iteration: {sel.latency:.4f} s  (G fwd {b['g_forward']:.4f}, D fwd {b['d_forward']:.4f}, "
        f"G bwd {b['g_backward']:.4f}, D bwd {b['d_backward']:.4f})",
        f"best uniform assignment: {_fmt(uniform_vec)} for every client, {uniform_s:.4f} s "
        f"(GA assignment {gain:.1f} % lower)",
        f"GA: {ga.generations_run} generations ({stop}), {ga.seconds:.1f} s",
    ]
    return "\n".join(lines)


def cuts_command(devices: Path, clients: int, seed: int, width: float, batch_size: int, cost_mode: str,
                 population: int, generations: int, stall_generations: int | None = 100,
                 architecture: str = "cgan28") -> str:
    """Text printed by ``huscf-mpi cuts``: the GA's cut vectors per device profile, the predicted
    seconds per iteration, the best uniform assignment and the GA's generations and time.

    Raises ``ValueError`` / ``FileNotFoundError`` for bad inputs (see ``select_cuts``).
    """
    config = GAConfig(population=population, generations=generations, stall_generations=stall_generations, seed=seed)
    sel = select_cuts(devices, clients, seed, width, batch_size, cost_mode, config, architecture)
    head = (f"HuSCF-GAN cut selection (SPEC §5): {clients} clients on {devices}, seed {seed}, {architecture} "
            f"width {width:g}, batch {batch_size}, {cost_mode} FLOPs; GA population {population}, "
            f"up to {generations} generations")
    return head + "\n" + format_selection(sel)
