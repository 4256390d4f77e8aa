"""Choosing every client's cut vector at start-up (SPEC §5; issue 3), collectively.

``cuts: ga``: every rank times its blocks, rank 0 measures its link to each client by
ping-pong, everything is gathered to rank 0, which runs the GA on the latency model and
broadcasts the cut vectors. The GA's client speeds are either the measured ones or, with
``cut_selection.devices``, emulated device profiles assigned with a seeded shuffle; emulated
clients are then paced to their profile while training (``huscf_mpi.cuts.emulation``).
Fixed modes (a vector, a per-client map, ``uniform-min/max``, ``random``) skip profiling and the GA
and strategies without cut points (every baseline) use :func:`plan_profiles` instead.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import seeding
from ..cuts.devices import DeviceProfile, assign_profiles, load_devices
from ..cuts.profiling import fit_link, ping_pong, time_blocks
from ..errors import SetupError
from ..models import NETS, CutVector, uniform_max, uniform_min, valid_cut_vectors

log = logging.getLogger("huscf_mpi")


@dataclass
class CutPlan:
    """Identical on every rank: the cuts, and (when emulating) each client's profile."""

    cuts: dict[int, CutVector]
    emulated: dict[int, DeviceProfile] = field(default_factory=dict)
    flops: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # net -> forward/backward FLOPs (L,)
    record: dict = field(default_factory=dict)  # rank 0: datasets/attrs for the result file
    profiles: dict[int, DeviceProfile] = field(default_factory=dict)  # rank -> profile to plan with (plan_profiles)


def fixed_cuts(config, arch) -> dict[int, CutVector]:
    """Cut vectors for the fixed modes. Raises ``SetupError`` naming the client and the rule."""
    n = config.data.n_clients
    spec = config.cuts
    if spec == "uniform-min":
        return {c: uniform_min(arch) for c in range(1, n + 1)}
    if spec == "uniform-max":
        return {c: uniform_max(arch) for c in range(1, n + 1)}
    if spec == "random":
        choices = valid_cut_vectors(arch)
        pick = seeding.rng(config.seed, seeding.GA, 0).integers(len(choices), size=n)
        return {c: choices[int(i)] for c, i in zip(range(1, n + 1), pick)}
    per_client = spec if isinstance(spec, dict) else {c: spec for c in range(1, n + 1)}
    out = {}
    for c, values in sorted(per_client.items()):
        if len(values) != 4:
            raise SetupError(f"cuts for client {c}: need 4 values [g_head, g_tail, d_head, d_tail], got {values}")
        v = CutVector.from_tuple(values)
        try:
            v.validate(arch)
        except ValueError as e:
            raise SetupError(f"cuts for client {c}: {e}") from None
        out[c] = v
    return out


def _measured_profile(name: str, flops: float, seconds: float, link: float) -> DeviceProfile:
    # Two significant digits: ranks that measure alike become one group the GA moves together.
    # A link too fast to resolve with the probe sizes (fit_link gives inf) counts as 1 TB/s.
    link = min(link, 1e12)
    rate = float(f"{flops / max(seconds, 1e-12):.2g}")
    return DeviceProfile(name, mhz=rate / 1e6, flops_per_cycle=1, link_bytes_per_s=float(f"{link:.2g}"))


def measure_ranks(config, arch, transport):
    """Collective profiling (SPEC §5 "measured"): every rank times its blocks at the training
    batch size; rank 0 measures its link to each client in turn by ping-pong at the sizes the
    cuts can produce. Returns ``(costs, times, links)``: block costs on every rank; on rank 0
    ``times`` (a :class:`~huscf_mpi.cuts.profiling.BlockTimes` per rank) and ``links``
    (client -> (latency s, bytes/s)), elsewhere ``None`` and ``{}``."""
    sel = config.cut_selection
    B, width, rank = config.training.batch_size, config.model.width, transport.rank
    times = time_blocks(arch, width, B, sel.profile_repeats, sel.profile_warmup)
    costs = None
    if rank == 0:
        from ..cuts.costs import block_costs  # torch's FLOP counter: rank 0 only

        costs = block_costs(arch, width, B, sel.cost_mode)
    costs = transport.bcast(costs)
    sizes = sorted({int(b) for net in NETS for b in costs[net].output_bytes[:-1]} | {8})
    links = {}
    for peer in range(1, transport.size):
        if rank == 0:
            links[peer] = fit_link(*ping_pong(transport.comm, peer, sizes, ledger=transport.ledger))
        elif rank == peer:
            ping_pong(transport.comm, 0, sizes, initiator=False, ledger=transport.ledger)
    return costs, transport.gather(times), links


def plan_cuts(config, arch, transport) -> CutPlan:
    """Collective, for ``cuts: ga``: profile, run the GA on rank 0, share the :class:`CutPlan`."""
    sel, cfg, rank = config.cut_selection, config, transport.rank
    costs, gathered, links = measure_ranks(config, arch, transport)
    flops = {net: {"forward": costs[net].forward_flops, "backward": costs[net].backward_flops} for net in NETS}

    plan = None
    if rank == 0:
        from ..cuts import GAConfig, latency_breakdown, select_for_profiles  # DEAP: rank 0 only

        total_flops = sum(float(costs[n].forward_flops.sum() + costs[n].backward_flops.sum()) for n in NETS)
        clients = list(range(1, transport.size))
        measured = {c: _measured_profile(f"rank{c}", total_flops, gathered[c].total(), links[c][1]) for c in clients}
        server_measured = _measured_profile("rank0", total_flops, gathered[0].total(),
                                            max(links[c][1] for c in clients))
        emulated = {}
        if sel.devices:
            profiles, server = load_devices(Path(sel.devices))
            by_name = {p.name: p for p in profiles}
            names = assign_profiles(len(clients), profiles, cfg.seed)
            emulated = {c: by_name[n] for c, n in zip(clients, names)}
            used = [emulated[c] for c in clients]
        else:
            server = server_measured
            used = [measured[c] for c in clients]
        chosen = select_for_profiles(arch, costs, used, server, GAConfig(
            population=sel.population, generations=sel.generations, stall_generations=sel.stall_generations,
            seed=cfg.seed))
        ga = chosen.ga
        cuts = dict(zip(clients, chosen.cuts))
        rates = dict(client_flops_per_s=[p.flops_per_s for p in used],
                     client_link_bytes_per_s=[p.link_bytes_per_s for p in used])
        # The same cuts with the server at its measured speed: the figure to hold against
        # measured iteration times when clients are emulated but the server runs as it is.
        at_real_server = float(latency_breakdown(ga.best[None], costs, **rates,
                                                 server_flops_per_s=server_measured.flops_per_s,
                                                 server_link_bytes_per_s=server.link_bytes_per_s)[0].sum())
        record = {
            "attrs": {"mode": "ga", "devices": sel.devices or "", "emulated": bool(sel.devices and sel.emulate),
                      "cost_mode": sel.cost_mode, "predicted_seconds_per_iteration": ga.best_latency,
                      "predicted_seconds_per_iteration_measured_server": at_real_server,
                      "best_uniform_seconds_per_iteration": chosen.best_uniform[1],
                      "best_uniform_vector": list(chosen.best_uniform[0].as_tuple()),
                      "ga_generations_run": ga.generations_run, "ga_stopped_early": ga.stopped_early,
                      "ga_seconds": ga.seconds, "server_flops_per_s_model": server.flops_per_s,
                      "server_flops_per_s_measured": server_measured.flops_per_s,
                      **{f"predicted_{t}_seconds": v for t, v in chosen.breakdown.items()}},
            "arrays": {"ga_best_fitness": ga.history["best"], "ga_mean_fitness": ga.history["mean"],
                       **{f"{net}_forward_flops": costs[net].forward_flops for net in NETS},
                       **{f"{net}_backward_flops": costs[net].backward_flops for net in NETS},
                       **{f"{net}_output_bytes": costs[net].output_bytes for net in NETS},
                       **{f"measured_{net}_forward_seconds": np.stack([gathered[r].forward[net] for r in range(transport.size)])
                          for net in NETS},
                       **{f"measured_{net}_backward_seconds": np.stack([gathered[r].backward[net] for r in range(transport.size)])
                          for net in NETS}},
            "profiles": {"client": clients, "profile": [p.name for p in used],
                         "flops_per_s": [p.flops_per_s for p in used],
                         "link_bytes_per_s": [p.link_bytes_per_s for p in used],
                         "measured_flops_per_s": [measured[c].flops_per_s for c in clients],
                         "measured_link_bytes_per_s": [links[c][1] for c in clients],
                         "measured_link_latency_s": [links[c][0] for c in clients]},
        }
        plan = CutPlan(cuts, emulated if sel.emulate else {}, flops, record)
        log.info("GA cuts: predicted %.4f s/iteration (best uniform %.4f s), %d generations, %.1f s",
                 ga.best_latency, chosen.best_uniform[1], ga.generations_run, ga.seconds)
    shared = transport.bcast(None if plan is None else (plan.cuts, plan.emulated, plan.flops))
    return plan if rank == 0 else CutPlan(*shared)


def plan_profiles(config, transport, cuts: dict | None = None, measure: bool = False) -> CutPlan:
    """Collective, for fixed cuts or none (strategies without cut points): no GA.

    With ``cut_selection.devices`` and ``emulate``, every non-server rank gets the same seeded
    profile assignment as the GA would give it and is paced to it, and every rank gets the
    per-block FLOPs its strategy paces compute by (counted on rank 0 at the training batch
    size, then broadcast). ``measure`` (a strategy that plans with device speeds, e.g. FSL-GAN's
    placement): profiles are wanted even when not paced: the assigned ones with ``devices`` and
    ``emulate: false``, else measured ones (every rank times its blocks and rank 0 probes its
    links, as for ``cuts: ga``; ``rank<r>`` profiles of two significant digits). Otherwise the
    plan is empty. ``CutPlan.profiles`` holds the profiles to plan with, ``emulated`` the paced ones.
    """
    sel = config.cut_selection
    emulate = bool(sel.devices and sel.emulate)
    if not (emulate or measure):
        return CutPlan(cuts or {})
    from ..models import domain_architecture

    arch = domain_architecture(config.model.architecture, config.data.domains, config.model.body_norm)
    clients = list(range(1, transport.size))
    if sel.devices:
        shared = None
        if transport.rank == 0:
            from ..cuts.costs import block_costs  # torch's FLOP counter: rank 0 only

            costs = block_costs(arch, config.model.width, config.training.batch_size, sel.cost_mode)
            profiles, _ = load_devices(Path(sel.devices))
            by_name = {p.name: p for p in profiles}
            names = assign_profiles(len(clients), profiles, config.seed)
            shared = ({c: by_name[n] for c, n in zip(clients, names)},
                      {net: {"forward": costs[net].forward_flops, "backward": costs[net].backward_flops} for net in NETS})
        profiles, flops = transport.bcast(shared)
    else:  # measured, as for `cuts: ga`
        costs, gathered, links = measure_ranks(config, arch, transport)
        flops = {net: {"forward": costs[net].forward_flops, "backward": costs[net].backward_flops} for net in NETS}
        shared = None
        if transport.rank == 0:
            total = sum(float(costs[n].forward_flops.sum() + costs[n].backward_flops.sum()) for n in NETS)
            shared = {c: _measured_profile(f"rank{c}", total, gathered[c].total(), links[c][1]) for c in clients}
        profiles = transport.bcast(shared)
    record = {}
    if transport.rank == 0:
        ranks = sorted(profiles)
        record = {"attrs": {"devices": sel.devices or "", "emulated": emulate, "cost_mode": sel.cost_mode},
                  "arrays": {}, "profiles": {"client": ranks, "profile": [profiles[c].name for c in ranks],
                                             "flops_per_s": [profiles[c].flops_per_s for c in ranks],
                                             "link_bytes_per_s": [profiles[c].link_bytes_per_s for c in ranks]}}
    return CutPlan(cuts or {}, profiles if emulate else {}, flops, record, profiles)
