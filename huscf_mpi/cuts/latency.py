r"""Predicted seconds per training iteration of the synchronous protocol (SPEC §5, the GA's fitness).

The model
---------
Notation, per network n ∈ {G, D} with blocks 1..L: ``f_b``, ``g_b`` forward / backward FLOPs of
block b for one client batch, ``s_b`` bytes of its output (fp32; the gradient w.r.t. it has the
same size). Client i has cut (h_i, t_i): it runs blocks 1..h_i and t_i..L, the server runs
h_i+1..t_i-1. ``c_i`` client FLOP/s, ``r_i`` the rate of a message between client i and the
server (bytes/s, see "Links" below), ``S`` server FLOP/s. ``m`` is 1 for G and 3 for D: the
discriminator path runs three passes per iteration (fakes, reals, and the G step; SPEC §1), and
every D term — client compute, transfers *and* server compute — is multiplied by 3.
``P_b = {i : h_i < b < t_i}`` are the clients the server runs block b for.

Forward pass of network n (times measured from the start of that pass):

* client i's smashed data arrives at the server at
  ``A_i = m · (Σ_{b<=h_i} f_b / c_i + s_{h_i} / r_i)``;
* the server runs its blocks in order b = 2..L-1, each once on the concatenation of its
  participants. Block b starts when the previous server block has finished (one server, one
  block at a time) *and* every client entering at b (h_i = b-1) has arrived:
  ``start_b = max(F_{b-1}, max_{i: h_i=b-1} A_i)``, ``F_b = start_b + m · |P_b| · f_b / S``,
  with ``F_1 = 0``; a block no client sends costs 0 and only passes the time on;
* client i gets its output as soon as its last server block t_i-1 finishes, downloads it and
  runs its tail: ``E_i = F_{t_i-1} + m · (s_{t_i-1} / r_i + Σ_{b>=t_i} f_b / c_i)``;
* the pass ends when the slowest client is done: ``T_fwd = max_i E_i``.

Backward pass, mirrored:

* client i runs its tail backward and uploads the gradient w.r.t. its tail input:
  ``U_i = m · (Σ_{b>=t_i} g_b / c_i + s_{t_i-1} / r_i)``;
* server blocks in reverse b = L-1..2: ``start'_b = max(B_{b+1}, max_{i: t_i=b+1} U_i)``,
  ``B_b = start'_b + m · |P_b| · g_b / S``, with ``B_L = 0``;
* client i gets the gradient w.r.t. its head output after server block h_i+1, downloads it
  and runs its head backward: ``E'_i = B_{h_i+1} + m · (s_{h_i} / r_i + Σ_{b<=h_i} g_b / c_i)``;
* ``T_bwd = max_i E'_i``.

Each of the four passes waits for its slowest participant before the next starts, so
``total = T_fwd(G) + T_fwd(D) + T_bwd(G) + T_bwd(D)`` seconds.

Links: a message between client i and the server takes ``bytes / r_i`` seconds, with
``r_i = client_link_bytes_per_s[i]``, or ``min(client link, server link)`` when the server's
link rate is given (the slower end of the point-to-point path). Messages of different clients
do not contend for the server's link; the paper's server link (1 GB/s) is no slower than any
client's, so passing it changes nothing there. No per-message latency is modelled.

Implementation: all candidates are evaluated at once (NumPy over P). A client's own times
depend only on its cut value and its two rates, so clients with equal rates form one group and
every max over clients becomes a max over (cut value, group) pairs present in a candidate; the
cost per call is a few passes over the (N, P) cut columns (about 2 ms for P = 1000, N = 80).

Rules: the model above is the default (``LatencyRules()``, cost mode ``"true"``). It corrects
three choices of the original code (SPEC §5), which the ``reference`` cost mode reproduces so a
predicted latency can be set beside the paper's 7.68 s (``LatencyRules.reference()``, picked
automatically for ``BlockCosts`` of mode ``"reference"``; see ``LatencyRules``):

1. the original multiplied the client-side D terms (compute and transfers) by 3 but not the
   server's D compute: reference mode uses ``m = 1`` in the ``F_b`` and ``B_b`` recurrences of D;
2. the original charged the server's block-2 backward with block 4's backward FLOPs
   (``backward_gen_flops[3]`` and ``backward_disc_flops[3]`` in ``CutLayerSelection.fitness``,
   0-based; block 4 = L-1 of its 5-block networks), in *both* networks: reference mode uses
   ``B_2 = start'_2 + m · |P_2| · g_{L-1} / S`` for G and D. Only the server's block-2 cost
   changes; a client that runs block 2 itself is charged its own block-2 FLOPs, as there;
3. the original charged every download (server -> client, ``s_{t_i-1}`` in ``E_i`` and
   ``s_{h_i}`` in ``E'_i``) at the server's link rate: reference mode uses the server link
   ``R`` in place of ``r_i`` there. Uploads keep ``r_i``, which is the original's client link
   whenever that is no faster than the server's (every profile of jobs/devices/paper.yaml).
   Without a server link rate there is nothing to charge downloads at, and they use ``r_i``.

Everything else (the critical path, per-block participants, the ×3 on client-side D compute
and on D transfers) is the same in both, and is what the original computed for its fixed
5-block networks (one cut per profile there; one per client here).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..models.architecture import DISCRIMINATOR, GENERATOR
from .costs import BlockCosts

#: Passes per iteration of each network's path (SPEC §1): G once, D three times.
PASSES = {GENERATOR: 1, DISCRIMINATOR: 3}
#: Column order of ``latency_breakdown``.
TERMS = ("g_forward", "d_forward", "g_backward", "d_backward")


@dataclass(frozen=True)
class LatencyRules:
    """Which latency model to evaluate: the corrected one (default) or the original's (SPEC §5).

    ``LatencyRules()`` is the model of the module docstring; ``LatencyRules.reference()`` turns
    on all three of the original's choices ("Rules" in the module docstring). The fields can be
    set one by one, e.g. to measure what each choice is worth.

    Attributes
    ----------
    server_d_passes : True (default): the server's D compute is multiplied by the 3 D passes,
        like every other D term; False (original): the server's D compute counts once while
        client-side D compute and D transfers still count 3 times.
    block2_backward_from_l_minus_1 : False (default): server block 2's backward costs its own
        backward FLOPs ``g_2``; True (original): it costs ``g_{L-1}``, the backward FLOPs of
        block L-1 (block 4 of the paper's 5-block networks), in both networks.
    downloads_at_server_link : False (default): a download takes ``bytes / r_i`` seconds,
        ``r_i = min(client link, server link)``; True (original): ``bytes / server link``
        (1 GB/s in jobs/devices/paper.yaml) whatever the client's link. Needs the server's
        link rate; without one, downloads use ``r_i``.
    """

    server_d_passes: bool = True
    block2_backward_from_l_minus_1: bool = False
    downloads_at_server_link: bool = False

    @classmethod
    def reference(cls) -> "LatencyRules":
        """The original code's latency model (cost mode ``"reference"``)."""
        return cls(server_d_passes=False, block2_backward_from_l_minus_1=True, downloads_at_server_link=True)

    @classmethod
    def for_costs(cls, costs: dict[str, "BlockCosts"]) -> "LatencyRules":
        """The rules that go with how ``costs`` were counted: ``reference()`` for ``BlockCosts``
        of mode ``"reference"`` (both networks), the default for ``"true"`` and ``"custom"``.

        Raises ``ValueError`` when one network's costs are ``"reference"`` and the other's not.
        """
        modes = {costs[net].mode for net in (GENERATOR, DISCRIMINATOR)}
        if "reference" not in modes:
            return cls()
        if len(modes) > 1:
            raise ValueError(f"G and D costs must both be in reference mode or neither, got {sorted(modes)}")
        return cls.reference()


def latency_breakdown(cuts: np.ndarray, costs: dict[str, BlockCosts], client_flops_per_s, client_link_bytes_per_s,
                      server_flops_per_s: float, server_link_bytes_per_s: float | None = None,
                      rules: LatencyRules | None = None) -> np.ndarray:
    """The four pass times of every candidate assignment (model in the module docstring).

    Parameters
    ----------
    cuts : int array (P, N, 4): per candidate p and client i, ``(g_head, g_tail, d_head,
        d_tail)``, 1-based block indices (``CutVector.as_tuple()`` order).
    costs : ``{"g": BlockCosts, "d": BlockCosts}`` for the batch size in use: FLOPs per block
        forward and backward, bytes of each block's output.
    client_flops_per_s : float (N,), FLOP/s of each client.
    client_link_bytes_per_s : float (N,), bytes/s of each client's link to the server.
    server_flops_per_s : FLOP/s of the server.
    server_link_bytes_per_s : bytes/s of the server's link, or None to use the clients' alone.
    rules : which model (``LatencyRules``); None (default) takes ``LatencyRules.for_costs(costs)``,
        i.e. the original's model for reference-mode costs and the corrected one otherwise.

    Returns
    -------
    float64 (P, 4): seconds of G forward, D forward, G backward, D backward (``TERMS``).

    Raises
    ------
    ValueError : wrong shapes, non-positive rates, a cut with an empty server span or out
        of 1..L (head >= 1, tail <= L, tail - head >= 2), or G and D costs of which only one
        is in reference mode (with ``rules`` None).
    """
    cuts = np.asarray(cuts)
    if cuts.ndim != 3 or cuts.shape[2] != 4 or not np.issubdtype(cuts.dtype, np.integer):
        raise ValueError(f"cuts must be an int array (P, N, 4), got {cuts.dtype} {cuts.shape}")
    n = cuts.shape[1]
    flops = np.asarray(client_flops_per_s, dtype=np.float64)
    link = np.asarray(client_link_bytes_per_s, dtype=np.float64)
    if n < 1:
        raise ValueError("need at least one client")
    if flops.shape != (n,) or link.shape != (n,):
        raise ValueError(f"client rates must have shape ({n},), got {flops.shape} and {link.shape}")
    if rules is None:
        rules = LatencyRules.for_costs(costs)
    # Rate of a download (server -> client): r_i (None), or the server's link for every client.
    download = None
    if server_link_bytes_per_s is not None:
        link = np.minimum(link, float(server_link_bytes_per_s))
        if rules.downloads_at_server_link:
            download = float(server_link_bytes_per_s)
    if (flops <= 0).any() or (link <= 0).any() or not server_flops_per_s > 0:
        raise ValueError("FLOP/s and link rates must be positive")
    if not all(costs[net].n_blocks < 64 for net in (GENERATOR, DISCRIMINATOR)):
        raise ValueError("at most 63 blocks per network")  # cut values are held as bits of a uint64
    group_flops, group_link, order, bounds = _rate_groups(flops, link)
    # (4, N, P) with clients sorted by rate group: reductions over clients run along axis 0,
    # elementwise across the contiguous candidate axis, which NumPy does fastest.
    small = cuts.size == 0 or (cuts.min() >= 0 and cuts.max() < 127)
    columns = np.ascontiguousarray(cuts.astype(np.int8 if small else np.int64).transpose(2, 1, 0))[:, order]
    out = np.empty((cuts.shape[0], 4))
    for k, net in enumerate((GENERATOR, DISCRIMINATOR)):
        m = PASSES[net]
        out[:, k], out[:, 2 + k] = _net_pass_times(columns[2 * k], columns[2 * k + 1], costs[net], m,
                                                   m if rules.server_d_passes else 1,
                                                   rules.block2_backward_from_l_minus_1, group_flops, group_link,
                                                   download, bounds, float(server_flops_per_s))
    return out


def iteration_latency(cuts: np.ndarray, costs: dict[str, BlockCosts], client_flops_per_s, client_link_bytes_per_s,
                      server_flops_per_s: float, server_link_bytes_per_s: float | None = None,
                      rules: LatencyRules | None = None) -> np.ndarray:
    """Seconds per training iteration of every candidate: float64 (P,), the sum of
    ``latency_breakdown``'s four terms (same parameters and errors)."""
    return latency_breakdown(cuts, costs, client_flops_per_s, client_link_bytes_per_s, server_flops_per_s,
                             server_link_bytes_per_s, rules).sum(axis=1)


def latency_fitness(costs: dict[str, BlockCosts], clients, server,
                    rules: LatencyRules | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """``iteration_latency`` bound to device profiles: ``cuts (P, N, 4) -> seconds (P,)``.

    ``clients`` is a sequence of N ``DeviceProfile`` (client i's profile at i), ``server`` the
    server's; the server's link rate is passed on (see "Links" in the module docstring).
    ``rules`` as in ``latency_breakdown`` (None: from the costs' mode, so reference-mode costs
    get the original's whole model). Raises ``ValueError`` as ``LatencyRules.for_costs``.
    """
    flops = np.array([c.flops_per_s for c in clients])
    link = np.array([c.link_bytes_per_s for c in clients])
    rules = LatencyRules.for_costs(costs) if rules is None else rules

    def fitness(cuts: np.ndarray) -> np.ndarray:
        return iteration_latency(cuts, costs, flops, link, server.flops_per_s, server.link_bytes_per_s, rules)

    return fitness


def _rate_groups(flops: np.ndarray, link: np.ndarray):
    """Group clients with equal (FLOP/s, link): the model cannot tell them apart.

    Returns per-group FLOP/s (K,) and link (K,), the client order that makes groups
    contiguous, and the groups' (start, stop) positions in that order.
    """
    rates, inverse = np.unique(np.stack([flops, link], axis=1), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    stops = np.cumsum(np.bincount(inverse, minlength=len(rates)))
    bounds = list(zip(np.concatenate([[0], stops[:-1]]).tolist(), stops.tolist()))
    return rates[:, 0], rates[:, 1], order, bounds


def _values_present(column: np.ndarray, first: int, n_values: int, bounds) -> np.ndarray:
    """bool (V, K, P): does group k hold a client whose cut value is ``first + v`` in candidate p."""
    bits = np.left_shift(np.uint64(1), (column - first).astype(np.uint64))  # one bit per value
    masks = np.stack([np.bitwise_or.reduce(bits[a:b], axis=0) for a, b in bounds])  # (K, P)
    shifts = np.arange(n_values, dtype=np.uint64)[:, None, None]
    return ((masks[None] >> shifts) & np.uint64(1)).astype(bool)


def _net_pass_times(head, tail, cost: BlockCosts, m: int, m_server: int, block2_from_l_minus_1: bool, flops, link,
                    download, bounds, server_flops):
    """(T_fwd, T_bwd), each float64 (P,), of one network; head, tail int (N, P), clients in group order.

    ``m`` multiplies client compute and transfers, ``m_server`` the server's compute;
    ``block2_from_l_minus_1`` charges server block 2's backward with g_{L-1}; ``download`` is the
    rate of every download (bytes/s), or None for each group's ``link`` (``LatencyRules``).
    A client's arrival, upload and finishing times depend only on its cut value and its rates,
    so each max over clients is a max over the rate groups holding that cut value.
    """
    L = cost.n_blocks
    if head.size and (head.min() < 1 or tail.max() > L or (tail.astype(np.int64) - head).min() < 2):
        raise ValueError(f"every cut needs 1 <= head, tail <= {L} and a non-empty server span (tail - head >= 2)")
    f, g = cost.forward_flops, cost.backward_flops
    g_server = g  # backward FLOPs the server is charged per block; client sums below use g
    if block2_from_l_minus_1:
        g_server = g.copy()
        g_server[1] = g[L - 2]
    s1 = np.concatenate([[0.0], cost.output_bytes])  # s1[b] = bytes out of block b
    heads, tails = np.arange(1, L - 1), np.arange(3, L + 1)  # every possible value, V = L-2 of each
    f_head, g_head = np.cumsum(f)[heads - 1], np.cumsum(g)[heads - 1]  # Σ_{b<=h}
    f_tail, g_tail = np.cumsum(f[::-1])[::-1][tails - 1], np.cumsum(g[::-1])[::-1][tails - 1]  # Σ_{b>=t}
    c, r = flops[None, :, None], link[None, :, None]
    r_down = r if download is None else download
    # (V, K, 1) per cut value and rate group (module docstring): A_i, U_i, and the offsets of E_i, E'_i.
    arrive = m * (f_head[:, None, None] / c + s1[heads][:, None, None] / r)
    head_done = m * (s1[heads][:, None, None] / r_down + g_head[:, None, None] / c)
    tail_done = m * (s1[tails - 1][:, None, None] / r_down + f_tail[:, None, None] / c)
    upload = m * (g_tail[:, None, None] / c + s1[tails - 1][:, None, None] / r)
    has_head = _values_present(head, 1, L - 2, bounds)  # (V, K, P)
    has_tail = _values_present(tail, 3, L - 2, bounds)
    any_head, any_tail = has_head.any(axis=1), has_tail.any(axis=1)  # (V, P)
    p = head.shape[1]
    # |P_b| = #{head < b} - #{tail <= b}, since tail <= b implies head < b.
    participants = {b: (head < b).sum(axis=0, dtype=np.int32) - (tail <= b).sum(axis=0, dtype=np.int32)
                    for b in range(2, L)}

    # Forward: server blocks in order; clients entering at b have head == b-1 (value index b-2).
    entering = (has_head * arrive).max(axis=1)  # (V, P), 0 where nobody
    finish = np.zeros((L + 1, p))  # finish[b] = F_b
    for b in range(2, L):
        finish[b] = np.maximum(finish[b - 1], entering[b - 2]) + m_server * participants[b] * (f[b - 1] / server_flops)
    done = finish[tails - 1] + (has_tail * tail_done).max(axis=1)  # (V, P) per tail value
    t_fwd = np.where(any_tail, done, 0.0).max(axis=0)

    # Backward: server blocks in reverse; clients entering at b have tail == b+1 (value index b-2).
    entering = (has_tail * upload).max(axis=1)
    finish = np.zeros((L + 1, p))  # finish[b] = B_b, B_L = 0
    for b in range(L - 1, 1, -1):
        cost_b = m_server * participants[b] * (g_server[b - 1] / server_flops)
        finish[b] = np.maximum(finish[b + 1], entering[b - 2]) + cost_b
    done = finish[heads + 1] + (has_head * head_done).max(axis=1)  # (V, P) per head value
    return t_fwd, np.where(any_head, done, 0.0).max(axis=0)
