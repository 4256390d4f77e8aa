"""Cut selection (SPEC §5): block costs, devices, the latency model, GA vs exhaustive search."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from huscf_mpi.cuts import (BlockCosts, GAConfig, assign_profiles, block_costs, cuts_command, exhaustive_best,
                            iteration_latency, latency_breakdown, latency_fitness, load_devices, run_ga,
                            uniform_assignments)
from huscf_mpi.cuts.latency import LatencyRules
from huscf_mpi.models import get_architecture, valid_net_cuts

torch.set_num_threads(1)
PAPER = Path(__file__).resolve().parents[1] / "jobs" / "devices" / "paper.yaml"
ARCH = get_architecture("cgan28")


@pytest.fixture(scope="module")
def paper_costs():
    return block_costs(ARCH, 1.0, 64, "true")


@pytest.fixture(scope="module")
def paper_devices():
    return load_devices(PAPER)


def paper_choices():
    return [valid_net_cuts(ARCH.n_blocks(n), ARCH.pinned[n]) for n in ("g", "d")]


# ---------------------------------------------------------------- costs

def test_true_flops_match_hand_count_of_small_conv_blocks():
    b = 4
    c = block_costs(ARCH, 0.25, b, "true")
    # D block 2 at width 0.25: Conv(16, 32, 4, 2, 1), 14x14 -> 7x7; a MAC is 2 FLOPs.
    conv = 2 * b * 16 * 32 * 4 * 4 * 7 * 7
    assert c["d"].forward_flops[1] == conv
    assert c["d"].backward_flops[1] == 2 * conv  # grad w.r.t. input and weights
    assert c["d"].output_bytes[1] == 4 * b * 32 * 7 * 7
    # G block 2: ConvT(64, 32, 4, 2, 1), 7x7 -> 14x14; true count runs over the *input* pixels.
    convt = 2 * b * 64 * 32 * 4 * 4 * 7 * 7
    assert c["g"].forward_flops[1] == convt
    assert c["g"].output_bytes[1] == 4 * b * 32 * 14 * 14
    # Last D block: Linear(64*3*3, 1); BN/activations count 0 under torch's counter.
    assert c["d"].forward_flops[4] == 2 * b * 64 * 9


def test_reference_mode_matches_hand_table():
    b = 4
    c = block_costs(ARCH, 0.25, b, "reference")
    px = 7 * 7
    conv = 16 * 32 * 16 * px  # MACs over output pixels
    fwd = 2 * conv + 32 * px + 8 * 32 * px + 2 * 32 * px  # conv + bias, BN2d, LeakyReLU
    bwd = 4 * conv + 32 * px + 11 * 32 * px + 3 * 32 * px
    assert c["d"].forward_flops[1] == b * fwd
    assert c["d"].backward_flops[1] == b * bwd
    # G block 1: the network's first layer, Linear(110, 64*49): backward = forward (no input grad).
    feats = 64 * 49
    lin = 2 * 110 * feats + feats
    assert c["g"].forward_flops[0] == b * (lin + 8 * feats + feats)
    assert c["g"].backward_flops[0] == b * (lin + 11 * feats + 2 * feats)


def test_g_block2_paper_figures(paper_costs):
    ref = block_costs(ARCH, 1.0, 64, "reference")
    assert ref["g"].forward_flops[1] == pytest.approx(13.17e9, rel=5e-3)
    assert paper_costs["g"].forward_flops[1] == pytest.approx(3.29e9, rel=5e-3)
    np.testing.assert_array_equal(ref["g"].output_bytes, paper_costs["g"].output_bytes)


@pytest.mark.parametrize("arch", [get_architecture("cgan28", (1, 28, 28), 2), get_architecture("cgan32", (3, 32, 32), 10)],
                         ids=["cgan28-2cls", "cgan32-rgb"])
def test_cost_model_covers_every_architecture(arch, paper_devices):
    b = 4
    costs = block_costs(arch, 0.25, b, "true")
    for net in ("g", "d"):
        shapes = arch.output_shapes(net, 0.25)
        assert costs[net].n_blocks == arch.n_blocks(net) == len(shapes)
        assert np.all(costs[net].forward_flops > 0) and np.all(costs[net].backward_flops >= 0)
        np.testing.assert_array_equal(costs[net].output_bytes, [4 * b * int(np.prod(s)) for s in shapes])
    ref = block_costs(arch, 0.25, b, "reference")  # the hand table knows every layer used
    assert np.all(ref["g"].forward_flops > 0)
    clients, server = paper_devices
    fit = latency_fitness(costs, clients[:3], server)
    choices = [valid_net_cuts(arch.n_blocks(n), arch.pinned[n]) for n in ("g", "d")]
    best, value = exhaustive_best(fit, choices, 3)
    result = run_ga(fit, choices, 3, GAConfig(population=40, generations=60, stall_generations=20, seed=0))
    assert np.isfinite(value) and value > 0 and result.best_latency == pytest.approx(value, rel=1e-12)


def test_block_costs_leave_torch_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    block_costs(ARCH, 0.25, 2)
    assert torch.equal(torch.rand(3), expected)


def test_block_costs_rejects_unknown_mode():
    with pytest.raises(ValueError, match="cost mode"):
        block_costs(ARCH, 1.0, 64, "guess")


# ---------------------------------------------------------------- devices

def test_load_paper_devices(paper_devices):
    clients, server = paper_devices
    assert [c.name for c in clients] == [f"device{i}" for i in range(1, 8)]
    assert clients[2].flops_per_s == pytest.approx(124.8e9)
    assert clients[0].flops_per_s == pytest.approx(0.48e9)
    assert clients[0].link_bytes_per_s == 50e6
    assert server.flops_per_s == pytest.approx(672e9)
    assert server.link_bytes_per_s == 1e9


def test_load_devices_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("clients:\n  a: {mhz: 1, flops_per_cycle: 1, link_bytes_per_s: 1}\n")
    with pytest.raises(ValueError, match="server"):
        load_devices(bad)
    bad.write_text("server: {mhz: 1, flops_per_cycle: 1, link_bytes_per_s: 1}\n"
                   "clients:\n  a: {mhz: 1, flops_per_cycle: 1}\n")
    with pytest.raises(ValueError, match="link_bytes_per_s"):
        load_devices(bad)


def test_assign_profiles_counts(paper_devices):
    clients, _ = paper_devices
    names = assign_profiles(80, clients, seed=0)
    counts = {c.name: names.count(c.name) for c in clients}
    assert sum(counts.values()) == 80
    assert sorted(counts.values()) == [11] * 4 + [12] * 3  # 80 = 7*11 + 3 distinct extras
    assert assign_profiles(80, clients, seed=0) == names
    assert assign_profiles(80, clients, seed=1) != names
    few = assign_profiles(5, clients, seed=0)
    assert len(set(few)) == 5  # fewer clients than profiles: all drawn, distinct
    exact = assign_profiles(14, [c.name for c in clients], seed=3)
    assert all(exact.count(c.name) == 2 for c in clients)


# ---------------------------------------------------------------- latency model

def tiny_costs():
    g = BlockCosts(forward_flops=[200, 1000, 400], backward_flops=[400, 2000, 800], output_bytes=[100, 100, 50])
    d = BlockCosts(forward_flops=[100, 300, 600, 50], backward_flops=[100, 600, 1200, 100],
                   output_bytes=[200, 100, 40, 4])
    return {"g": g, "d": d}


def test_latency_two_clients_by_hand():
    # Client A: 100 FLOP/s, 100 B/s; client B: 50 FLOP/s, 25 B/s; server 1000 FLOP/s.
    # G (3 blocks) both (1, 3). D (4 blocks): A (2, 4) -> server block 3; B (1, 3) -> server block 2.
    cuts = np.array([[[1, 3, 2, 4], [1, 3, 1, 3]]])
    terms = latency_breakdown(cuts, tiny_costs(), [100.0, 50.0], [100.0, 25.0], 1000.0)[0]
    # G fwd: arrivals A 200/100+100/100=3, B 200/50+100/25=8; block 2 starts 8, 2*1000/1000 -> 10;
    #        tails A 10+100/100+400/100=15, B 10+100/25+400/50=22.
    # D fwd (x3): arrivals A 3*(400/100+100/100)=15 at block 3, B 3*(100/50+200/25)=30 at block 2;
    #        block 2: 30 + 3*300/1000 = 30.9; block 3: max(30.9, 15) + 3*600/1000 = 32.7;
    #        tails A 32.7 + 3*(40/100+50/100) = 35.4, B 30.9 + 3*(100/25+650/50) = 81.9.
    # G bwd: uploads A 800/100+100/100=9, B 800/50+100/25=20; block 2: 20 + 2*2000/1000 = 24;
    #        heads A 24+1+4=29, B 24+4+8=36.
    # D bwd: uploads A 3*(100/100+40/100)=4.2 into block 3, B 3*(1300/50+100/25)=90 into block 2;
    #        block 3: 4.2 + 3*1200/1000 = 7.8; block 2: max(7.8, 90) + 3*600/1000 = 91.8;
    #        heads A 7.8 + 3*(100/100+400/100) = 31.8, B 91.8 + 3*(200/25+100/50) = 121.8.
    np.testing.assert_allclose(terms, [22.0, 81.9, 36.0, 121.8], rtol=1e-12)
    total = iteration_latency(cuts, tiny_costs(), [100.0, 50.0], [100.0, 25.0], 1000.0)
    np.testing.assert_allclose(total, [261.7], rtol=1e-12)


def test_latency_shared_server_block_and_server_link():
    # Both clients D (1, 4): blocks 2 and 3 run for both; G as above.
    cuts = np.array([[[1, 3, 1, 4], [1, 3, 1, 4]]])
    d = latency_breakdown(cuts, tiny_costs(), [100.0, 50.0], [100.0, 25.0], 1000.0)[0]
    # D fwd: arrivals A 3*(1+2)=9, B 30; block 2: 30 + 3*2*300/1000 = 31.8; block 3: + 3*2*600/1000 = 35.4;
    #        tails A 35.4 + 3*(40/100+50/100) = 38.1, B 35.4 + 3*(40/25+50/50) = 43.2.
    # D bwd: uploads A 3*(1+0.4)=4.2, B 3*(100/50+40/25)=10.8; block 3: 10.8+3.6*2 = 18;
    #        block 2: 18 + 3*2*600/1000 = 21.6; heads A 21.6+3*(2+1) = 30.6, B 21.6+3*(8+2) = 51.6.
    np.testing.assert_allclose(d[[1, 3]], [43.2, 51.6], rtol=1e-12)
    # A server link slower than both clients caps every message at its rate.
    capped = latency_breakdown(cuts, tiny_costs(), [100.0, 50.0], [100.0, 25.0], 1000.0, server_link_bytes_per_s=10.0)
    same = latency_breakdown(cuts, tiny_costs(), [100.0, 50.0], [10.0, 10.0], 1000.0)
    np.testing.assert_allclose(capped, same)
    fast = latency_breakdown(cuts, tiny_costs(), [100.0, 50.0], [100.0, 25.0], 1000.0, server_link_bytes_per_s=1e12)
    np.testing.assert_allclose(fast[0], d)


def loop_latency(cut_rows, costs, flops, link, server, server_d_once=False, block2_from_l_minus_1=False,
                 download_link=None):
    """Straightforward per-individual model (SPEC §5), written independently of the vectorised one.

    The keywords switch on the original's three choices: server-side D compute counted once,
    server block 2's backward charged g_{L-1}, every download at ``download_link`` bytes/s.
    """
    total = 0.0
    for k, net in enumerate(("g", "d")):
        m = 3 if net == "d" else 1
        ms = 1 if server_d_once else m
        c = costs[net]
        L = c.n_blocks
        f, g, s = list(c.forward_flops), list(c.backward_flops), list(c.output_bytes)
        gs = list(g)
        if block2_from_l_minus_1:
            gs[1] = g[L - 2]
        down = [download_link or link[i] for i in range(len(cut_rows))]
        heads = [int(r[2 * k]) for r in cut_rows]
        tails = [int(r[2 * k + 1]) for r in cut_rows]
        n = len(cut_rows)
        clients = range(n)
        # forward
        arrive = [m * (sum(f[:heads[i]]) / flops[i] + s[heads[i] - 1] / link[i]) for i in clients]
        fin, t = {}, 0.0
        for b in range(2, L):
            members = [i for i in clients if heads[i] < b < tails[i]]
            ready = [arrive[i] for i in clients if heads[i] == b - 1]
            t = max([t] + ready) + ms * len(members) * f[b - 1] / server
            fin[b] = t
        total += max(fin[tails[i] - 1] + m * (s[tails[i] - 2] / down[i] + sum(f[tails[i] - 1:]) / flops[i])
                     for i in clients)
        # backward
        up = [m * (sum(g[tails[i] - 1:]) / flops[i] + s[tails[i] - 2] / link[i]) for i in clients]
        fin, t = {}, 0.0
        for b in range(L - 1, 1, -1):
            members = [i for i in clients if heads[i] < b < tails[i]]
            ready = [up[i] for i in clients if tails[i] == b + 1]
            t = max([t] + ready) + ms * len(members) * gs[b - 1] / server
            fin[b] = t
        total += max(fin[heads[i] + 1] + m * (s[heads[i] - 1] / down[i] + sum(g[:heads[i]]) / flops[i])
                     for i in clients)
    return total


def random_valid_cuts(rng, p, n, L_g, L_d):
    out = np.empty((p, n, 4), dtype=np.int64)
    for k, L in enumerate((L_g, L_d)):
        options = [(h, t) for h in range(1, L) for t in range(h + 2, L + 1)]  # no pinned block
        pick = rng.integers(len(options), size=(p, n))
        out[..., 2 * k] = np.array([o[0] for o in options])[pick]
        out[..., 2 * k + 1] = np.array([o[1] for o in options])[pick]
    return out


def test_vectorised_latency_equals_per_individual_loop():
    rng = np.random.default_rng(7)
    costs = {"g": BlockCosts(rng.uniform(1e8, 4e9, 5), rng.uniform(1e8, 8e9, 5), rng.uniform(1e4, 1e7, 5)),
             "d": BlockCosts(rng.uniform(1e8, 4e9, 6), rng.uniform(1e8, 8e9, 6), rng.uniform(1e4, 1e7, 6))}
    n = 7
    # Repeated rates exercise the grouping of identical clients.
    flops = np.array([1e9, 5e10, 1e9, 2e10, 5e10, 1e9, 3e9])
    link = np.array([5e7, 1e9, 5e7, 3e8, 1e9, 1e8, 5e7])
    cuts = random_valid_cuts(rng, 200, n, 5, 6)
    got = iteration_latency(cuts, costs, flops, link, 6.72e11)
    want = [loop_latency(c, costs, flops, link, 6.72e11) for c in cuts]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_latency_rejects_invalid_cuts(paper_costs):
    ones = np.ones(2)
    with pytest.raises(ValueError, match="server span"):
        iteration_latency(np.array([[[2, 3, 1, 5], [1, 5, 1, 5]]]), paper_costs, ones, ones, 1.0)
    with pytest.raises(ValueError, match="shape"):
        iteration_latency(np.array([[[1, 5, 1, 5]]]), paper_costs, ones, ones, 1.0)


def test_reference_quirks_are_corrected(paper_costs, paper_devices):
    clients, server = paper_devices
    fit = latency_fitness(paper_costs, clients[:2], server)
    cuts = np.array([[[1, 5, 1, 5], [1, 5, 1, 5]]])
    # With every client on (1,5,1,5) the server runs blocks 2-4 for both clients on the critical
    # path, so a (near-)infinitely fast server saves exactly the server compute: G once, D three
    # times (the original charged server-side D once), each block with its own backward FLOPs.
    fast_server = type(server)("fast", server.mhz * 1e6, server.flops_per_cycle, server.link_bytes_per_s)
    diff = fit(cuts)[0] - latency_fitness(paper_costs, clients[:2], fast_server)(cuts)[0]
    server_g = 2 * (paper_costs["g"].forward_flops[1:4].sum() + paper_costs["g"].backward_flops[1:4].sum())
    server_d = 2 * (paper_costs["d"].forward_flops[1:4].sum() + paper_costs["d"].backward_flops[1:4].sum())
    assert diff == pytest.approx((server_g + 3 * server_d) / server.flops_per_s, rel=1e-5)


# ------------------------------------------------ reference latency model (the original's, SPEC §5)

def five_block_costs(mode="custom"):
    g = BlockCosts([100, 200, 300, 400, 500], [200, 400, 600, 800, 1000], [50, 20, 100, 50, 10], mode=mode)
    d = BlockCosts([100, 300, 600, 300, 50], [100, 600, 1200, 900, 100], [200, 20, 40, 20, 4], mode=mode)
    return {"g": g, "d": d}


# Client A: 50 FLOP/s, link 100 B/s; client B: 200 FLOP/s, link 50 B/s; server 1000 FLOP/s, link 200 B/s.
# G: A (1, 5), B (2, 4); D: A (1, 4), B (2, 5). Five blocks each, so block L-1 = 4.
FIVE_CUTS = np.array([[[1, 5, 1, 4], [2, 4, 2, 5]]])
FIVE_RATES = ([50.0, 200.0], [100.0, 50.0], 1000.0, 200.0)
# Hand computation. P_2 = {A}, P_3 = {A, B}, P_4 = {A} in G and {B} in D.
# G forward: arrivals A 100/50+50/100 = 2.5 (h=1), B 300/200+20/50 = 1.9 (h=2); F_2 = 2.5+200/1000 = 2.7,
#   F_3 = max(2.7, 1.9)+2*300/1000 = 3.3, F_4 = 3.3+400/1000 = 3.7;
#   tails A 3.7 + 50/100 + 500/50 = 14.2, B 3.3 + 100/50 + 900/200 = 9.8          -> 14.2
#   downloads at 200 B/s: A 3.7 + 0.25 + 10 = 13.95, B 3.3 + 0.5 + 4.5 = 8.3      -> 13.95
# G backward: uploads A 1000/50+50/100 = 20.5 (t=5), B 1800/200+100/50 = 11 (t=4);
#   B_4 = 20.5+0.8 = 21.3, B_3 = max(21.3, 11)+2*600/1000 = 22.5, B_2 = 22.5+400/1000 = 22.9;
#   heads A 22.9 + 50/100 + 200/50 = 27.4, B 22.5 + 20/50 + 600/200 = 25.9           -> 27.4
#   block 2 charged g_4 = 800: B_2 = 23.3, A 27.8                                      -> 27.8
#   downloads at 200: A 22.9 + 0.25 + 4 = 27.15, B 22.5 + 0.1 + 3 = 25.6              -> 27.15
#   both: A 23.3 + 0.25 + 4 = 27.55                                                   -> 27.55
# D forward (x3): arrivals A 3*(100/50+200/100) = 12, B 3*(400/200+20/50) = 7.2;
#   server x3: F_2 = 12+3*300/1000 = 12.9, F_3 = 12.9+3*2*600/1000 = 16.5, F_4 = 16.5+0.9 = 17.4;
#     tails A (t=4) 16.5 + 3*(40/100+350/50) = 38.7, B (t=5) 17.4 + 3*(20/50+50/200) = 19.35  -> 38.7
#   server x1: F_2 = 12.3, F_3 = 13.5, F_4 = 13.8; A 13.5 + 22.2 = 35.7                -> 35.7
#   downloads at 200: A 16.5 + 3*(40/200+7) = 38.1                                     -> 38.1
#   both: A 13.5 + 21.6 = 35.1, B 13.8 + 3*(20/200+0.25) = 14.85                       -> 35.1
# D backward (x3): uploads A 3*(1000/50+40/100) = 61.2 (t=4), B 3*(100/200+20/50) = 2.7 (t=5);
#   server x3: B_4 = 2.7+3*900/1000 = 5.4, B_3 = 61.2+3*2*1200/1000 = 68.4, B_2 = 68.4+3*600/1000 = 70.2;
#     heads A 70.2 + 3*(200/100+100/50) = 82.2, B 68.4 + 3*(20/50+700/200) = 80.1     -> 82.2
#   server x1: B_4 = 3.6, B_3 = 63.6, B_2 = 64.2; A 76.2, B 75.3                        -> 76.2
#   block 2 charged g_4 = 900: B_2 = 68.4+3*900/1000 = 71.1, A 83.1                     -> 83.1
#   downloads at 200: A 70.2 + 3*(1+2) = 79.2, B 68.4 + 3*(0.1+3.5) = 79.2              -> 79.2
#   all three: B_2 = 63.6+0.9 = 64.5, A 64.5 + 9 = 73.5, B 63.6 + 10.8 = 74.4          -> 74.4
FIVE_DEFAULT = [14.2, 38.7, 27.4, 82.2]


@pytest.mark.parametrize("rules, want", [
    (LatencyRules(), FIVE_DEFAULT),
    (LatencyRules(server_d_passes=False), [14.2, 35.7, 27.4, 76.2]),
    (LatencyRules(block2_backward_from_l_minus_1=True), [14.2, 38.7, 27.8, 83.1]),
    (LatencyRules(downloads_at_server_link=True), [13.95, 38.1, 27.15, 79.2]),
    (LatencyRules.reference(), [13.95, 35.1, 27.55, 74.4]),
])
def test_reference_rules_by_hand(rules, want):
    terms = latency_breakdown(FIVE_CUTS, five_block_costs(), *FIVE_RATES, rules=rules)[0]
    np.testing.assert_allclose(terms, want, rtol=1e-12)


def test_reference_costs_select_reference_rules():
    ref, custom = five_block_costs("reference"), five_block_costs()
    np.testing.assert_allclose(latency_breakdown(FIVE_CUTS, ref, *FIVE_RATES)[0], [13.95, 35.1, 27.55, 74.4],
                               rtol=1e-12)
    np.testing.assert_allclose(latency_breakdown(FIVE_CUTS, custom, *FIVE_RATES)[0], FIVE_DEFAULT, rtol=1e-12)
    # An explicit rule set wins over the costs' mode.
    np.testing.assert_allclose(latency_breakdown(FIVE_CUTS, ref, *FIVE_RATES, rules=LatencyRules())[0],
                               FIVE_DEFAULT, rtol=1e-12)
    assert LatencyRules.for_costs(block_costs(ARCH, 0.25, 2, "true")) == LatencyRules()
    assert LatencyRules.for_costs(block_costs(ARCH, 0.25, 2, "reference")) == LatencyRules.reference()
    with pytest.raises(ValueError, match="reference mode"):
        latency_breakdown(FIVE_CUTS, {"g": ref["g"], "d": custom["d"]}, *FIVE_RATES)
    # Without a server link there is nothing to charge downloads at: they run at the client's link.
    no_link = latency_breakdown(FIVE_CUTS, ref, *FIVE_RATES[:3])[0]
    np.testing.assert_allclose(no_link, latency_breakdown(FIVE_CUTS, custom, *FIVE_RATES[:3], rules=LatencyRules(
        server_d_passes=False, block2_backward_from_l_minus_1=True))[0], rtol=1e-12)


def test_vectorised_reference_latency_equals_per_individual_loop():
    rng = np.random.default_rng(11)
    costs = {"g": BlockCosts(rng.uniform(1e8, 4e9, 5), rng.uniform(1e8, 8e9, 5), rng.uniform(1e4, 1e7, 5)),
             "d": BlockCosts(rng.uniform(1e8, 4e9, 6), rng.uniform(1e8, 8e9, 6), rng.uniform(1e4, 1e7, 6))}
    flops = np.array([1e9, 5e10, 1e9, 2e10, 5e10, 1e9, 3e9])
    link = np.array([5e7, 1e9, 5e7, 3e8, 1e9, 1e8, 5e7])
    cuts = random_valid_cuts(rng, 200, 7, 5, 6)
    got = iteration_latency(cuts, costs, flops, link, 6.72e11, 1e9, rules=LatencyRules.reference())
    want = [loop_latency(c, costs, flops, link, 6.72e11, server_d_once=True, block2_from_l_minus_1=True,
                         download_link=1e9) for c in cuts]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_reference_model_on_paper_costs(paper_devices):
    clients, server = paper_devices
    ref = block_costs(ARCH, 1.0, 64, "reference")
    fit = latency_fitness(ref, clients[:2], server)
    cuts = np.array([[[1, 5, 1, 5], [1, 5, 1, 5]]])
    # As test_reference_quirks_are_corrected, in reference mode: the server's compute is G once and
    # D once (not 3 times), and its block-2 backward costs block 4's backward FLOPs.
    fast_server = type(server)("fast", server.mhz * 1e6, server.flops_per_cycle, server.link_bytes_per_s)
    diff = fit(cuts)[0] - latency_fitness(ref, clients[:2], fast_server)(cuts)[0]
    server_flops = sum(2 * (ref[n].forward_flops[1:4].sum() + ref[n].backward_flops[[3, 2, 3]].sum())
                       for n in ("g", "d"))
    assert diff == pytest.approx(server_flops / server.flops_per_s, rel=1e-5)
    # Downloads at the server's 1 GB/s: with every client's and the server's compute made free,
    # only the transfers are left; D moves 3x, uploads at the client's link.
    free = [type(c)(c.name, c.mhz * 1e9, c.flops_per_cycle, c.link_bytes_per_s) for c in clients[:2]]
    comm = latency_fitness(ref, free, fast_server)(cuts)[0]
    slow = min(c.link_bytes_per_s for c in clients[:2])
    s1, s4 = {n: ref[n].output_bytes[0] for n in "gd"}, {n: ref[n].output_bytes[3] for n in "gd"}
    fast = server.link_bytes_per_s  # uploads at the slower client's link, downloads at 1 GB/s:
    want = sum(m * (s1[n] / slow + s4[n] / fast + s4[n] / slow + s1[n] / fast) for n, m in (("g", 1), ("d", 3)))
    assert comm == pytest.approx(want, rel=1e-5)


def test_default_model_unchanged_on_paper_problem(paper_costs, paper_devices):
    # Pinned figure of benchmarks/README.md: the best uniform assignment of the 80-client paper
    # problem under true FLOPs and the corrected model is (1,5,1,5) at 9.7213 s.
    clients, server = paper_devices
    by = {c.name: c for c in clients}
    fit = latency_fitness(paper_costs, [by[n] for n in assign_profiles(80, clients, seed=0)], server)
    vectors, lat = uniform_assignments(fit, paper_choices(), 80)
    assert tuple(vectors[int(np.argmin(lat))]) == (1, 5, 1, 5)
    assert lat.min() == pytest.approx(9.7213, abs=5e-5)


def test_consolidating_a_profile_never_hurts():
    # The fact behind the GA's group-consensus step (ga.py, step 5): giving every client of one
    # rate group the largest head and smallest tail among them never raises the latency.
    rng = np.random.default_rng(3)
    costs = {"g": BlockCosts(rng.uniform(1e8, 4e9, 5), rng.uniform(1e8, 8e9, 5), rng.uniform(1e4, 1e7, 5)),
             "d": BlockCosts(rng.uniform(1e8, 4e9, 6), rng.uniform(1e8, 8e9, 6), rng.uniform(1e4, 1e7, 6))}
    group = np.array([0, 1, 0, 2, 1, 0, 2, 1])
    flops, link = np.array([2e9, 4e10, 9e10])[group], np.array([5e7, 3e8, 1e9])[group]
    p = 400
    cuts = np.empty((p, 8, 4), dtype=np.int64)
    cuts[..., 0], cuts[..., 1] = rng.integers(1, 3, (p, 8)), rng.integers(4, 6, (p, 8))  # block 3 pinned
    cuts[..., 2], cuts[..., 3] = rng.integers(1, 3, (p, 8)), rng.integers(4, 7, (p, 8))
    before = iteration_latency(cuts, costs, flops, link, 6.72e11)
    strictly_better = 0
    for g in range(3):
        merged = cuts.copy()
        members = group == g
        for col, pick in ((0, np.max), (1, np.min), (2, np.max), (3, np.min)):
            merged[:, members, col] = pick(cuts[:, members, col], axis=1, keepdims=True)
        after = iteration_latency(merged, costs, flops, link, 6.72e11)
        assert np.all(after <= before * (1 + 1e-12))
        strictly_better += int(np.sum(after < before * (1 - 1e-9)))
    assert strictly_better > 0  # the check is not vacuous


# ---------------------------------------------------------------- GA and search

def test_exhaustive_finds_known_optimum():
    target = np.array([[2, 4, 1, 5], [1, 4, 2, 4], [1, 5, 1, 5]])

    def fitness(cuts):
        return np.abs(cuts - target).sum(axis=(1, 2)).astype(float)

    best, value = exhaustive_best(fitness, paper_choices(), 3)
    np.testing.assert_array_equal(best, target)
    assert value == 0.0


def test_uniform_assignments_cover_every_vector(paper_costs, paper_devices):
    clients, server = paper_devices
    fit = latency_fitness(paper_costs, clients[:3], server)
    vectors, lat = uniform_assignments(fit, paper_choices(), 3)
    assert vectors.shape == (16, 4) and len({tuple(v) for v in vectors}) == 16
    i = 5
    assert lat[i] == pytest.approx(fit(np.tile(vectors[i], (1, 3, 1)))[0])


@pytest.mark.parametrize("picks", [(0, 2), (0, 4, 6), (0, 2, 4, 5)])
def test_ga_matches_exhaustive_optimum(paper_costs, paper_devices, picks):
    clients, server = paper_devices
    fit = latency_fitness(paper_costs, [clients[i] for i in picks], server)
    n = len(picks)
    best, value = exhaustive_best(fit, paper_choices(), n)
    _, uniform = uniform_assignments(fit, paper_choices(), n)
    assert value < uniform.min()  # mixed profiles: the optimum is not a uniform assignment
    config = GAConfig(population=80, generations=150, stall_generations=40, seed=0, seed_uniform=False)
    result = run_ga(fit, paper_choices(), n, config)
    assert result.best_latency == pytest.approx(value, rel=1e-12)
    assert fit(result.best[None])[0] == pytest.approx(result.best_latency, rel=1e-12)
    assert np.all(np.diff(result.history["best"]) <= 0)  # elitism


def test_ga_group_step_reaches_exhaustive_optimum(paper_costs, paper_devices):
    # Six clients, two per profile: the group step moves a profile's clients together.
    clients, server = paper_devices
    picks = [0, 0, 4, 4, 6, 6]
    fit = latency_fitness(paper_costs, [clients[i] for i in picks], server)
    # 16**6 assignments are slow to enumerate; the G and D terms separate, so enumerate the
    # 4**6 cuts of each network with the other one fixed at (1, 5), and add the two optima.
    best = 0.0
    for k in range(2):
        options = np.array([[c.head, c.tail] for c in paper_choices()[k]])
        combos = np.array(np.meshgrid(*[range(4)] * 6, indexing="ij")).reshape(6, -1).T
        cuts = np.empty((len(combos), 6, 4), dtype=np.int64)
        cuts[..., 2 * (1 - k):2 * (1 - k) + 2] = (1, 5)
        cuts[..., 2 * k:2 * k + 2] = options[combos]
        terms = latency_breakdown(cuts, paper_costs, [clients[i].flops_per_s for i in picks],
                                  [clients[i].link_bytes_per_s for i in picks], server.flops_per_s,
                                  server.link_bytes_per_s)
        best += (terms[:, k] + terms[:, 2 + k]).min()
    config = GAConfig(population=30, generations=30, stall_generations=10, seed=2)
    result = run_ga(fit, paper_choices(), 6, config, groups=[clients[i].name for i in picks])
    assert result.best_latency == pytest.approx(best, rel=1e-12)
    with pytest.raises(ValueError, match="groups"):
        run_ga(fit, paper_choices(), 6, config, groups=["a"])


def test_ga_same_seed_same_answer_and_random_untouched(paper_costs, paper_devices):
    clients, server = paper_devices
    names = assign_profiles(12, clients, seed=0)
    by = {c.name: c for c in clients}
    fit = latency_fitness(paper_costs, [by[x] for x in names], server)
    config = GAConfig(population=40, generations=30, stall_generations=None, seed=5)
    random.seed(99)
    state = random.getstate()
    a = run_ga(fit, paper_choices(), 12, config)
    assert random.getstate() == state
    b = run_ga(fit, paper_choices(), 12, config)
    np.testing.assert_array_equal(a.best, b.best)
    np.testing.assert_array_equal(a.history["best"], b.history["best"])
    np.testing.assert_array_equal(a.history["mean"], b.history["mean"])
    assert a.generations_run == 30 and not a.stopped_early and len(a.history["best"]) == 31
    c = run_ga(fit, paper_choices(), 12, GAConfig(population=40, generations=30, stall_generations=None, seed=6))
    assert not np.array_equal(a.history["mean"], c.history["mean"])


def test_ga_stall_stops_early_and_seeded_uniform_is_a_floor(paper_costs, paper_devices):
    clients, server = paper_devices
    fit = latency_fitness(paper_costs, clients, server)
    result = run_ga(fit, paper_choices(), 7, GAConfig(population=30, generations=500, stall_generations=5, seed=1))
    assert result.stopped_early and result.generations_run < 500
    _, uniform = uniform_assignments(fit, paper_choices(), 7)
    assert result.best_latency <= uniform.min()


def test_cuts_command_text():
    text = cuts_command(PAPER, clients=9, seed=0, width=1.0, batch_size=64, cost_mode="true",
                        population=40, generations=20)
    assert "device1" in text and "predicted seconds per iteration" in text
    assert "best uniform assignment" in text and "GA: " in text
