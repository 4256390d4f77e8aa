"""Baselines over MPI equal a single-process computation; every strategy's exposure is as documented.

The MPI side (tests/mpi/strategy_iteration.py) runs the real server and client strategies on
4 ranks: one iteration, one round end, one evaluation hand-off. The references below are
written independently of huscf_mpi.strategies: whole networks from the shared init,
torch.optim.Adam, the losses of SPEC §1 and each paper's aggregation, in one process.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from huscf_mpi import seeding
from huscf_mpi.models import full_blocks, get_architecture
from huscf_mpi.registry import load_strategy
from huscf_mpi.strategies.mdgan import derangement, swap_targets

from .conftest import ROOT, run_mpi

sys.path.insert(0, str(ROOT / "tests" / "mpi"))
import strategy_iteration as case  # noqa: E402

torch.set_num_threads(1)
ARCH = get_architecture("cgan28")
BCE = nn.BCELoss()


def _run(tmp_path: Path, strategy: str, fake_labels: str = "real", tag: str = "", ranks: int = 4) -> tuple[dict, set]:
    out, out_json = tmp_path / f"{strategy}{tag}.npz", tmp_path / f"{strategy}{tag}.json"
    proc = run_mpi(ranks, [sys.executable, str(ROOT / "tests" / "mpi" / "strategy_iteration.py"), strategy,
                           fake_labels, str(out), str(out_json)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(out)), {tuple(e) for e in json.loads(out_json.read_text())}


def _whole(net):
    blocks = full_blocks(ARCH, case.WIDTH, case.INIT_SEED)[net]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleDict({str(b): m for b, m in blocks.items()})

        def forward(self, x, labels):
            for b in sorted(blocks):
                x = self.blocks[str(b)](x, labels) if b == 1 else self.blocks[str(b)](x)
            return x

    return Net()


def _adam(module):
    return torch.optim.Adam(module.parameters(), lr=2e-4, betas=(0.5, 0.999))


def _assert_states(got: dict, ref: dict) -> None:
    assert set(got) == set(ref)
    for key, value in ref.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-5, err_msg=key)


@pytest.mark.mpi
def test_fedgan_iteration_and_fedavg_match_single_process(tmp_path):
    got, exposure = _run(tmp_path, "fedgan")
    B, states = case.BATCH, {}
    for c in case.CLIENTS:
        g, d = _whole("g"), _whole("d")
        g_opt, d_opt = _adam(g), _adam(d)
        noise = torch.Generator().manual_seed(seeding.int_seed(case.SEED, "sampling", c))
        x, y = case.batch(c)
        z = torch.randn(B, 100, generator=noise)
        fake = g(z, y)  # training.fake_labels: real
        d_opt.zero_grad()
        (BCE(d(fake.detach(), y), torch.zeros(B, 1)) + BCE(d(x, y), torch.ones(B, 1))).backward()
        d_opt.step()
        g_opt.zero_grad()
        BCE(d(fake, y), torch.ones(B, 1)).backward()
        g_opt.step()
        states[c] = {f"{net}/{k}": v.detach().numpy().astype(np.float64)
                     for net, m in (("g", g), ("d", d)) for k, v in m.state_dict().items()}
    n = np.array([case.SIZES[c] for c in case.CLIENTS], np.float64)
    w = n / n.sum()
    ref = {}
    for key, value in states[1].items():
        avg = sum(wi * states[c][key] for wi, c in zip(w, case.CLIENTS))
        avg = np.rint(avg) if "num_batches_tracked" in key else avg
        for c in case.CLIENTS:
            ref[f"{c}/{key}"] = avg
    _assert_states(got, ref)
    assert exposure == load_strategy("fedgan").exposure(case.case("fedgan", "real").config)
    assert exposure == {("parameters", "client", "server"), ("parameters", "server", "client")}


@pytest.mark.mpi
def test_mdgan_iteration_feedback_and_swap_match_single_process(tmp_path):
    got, exposure = _run(tmp_path, "mdgan")
    B, N, clients = case.BATCH, len(case.CLIENTS), list(case.CLIENTS)
    g, ds = _whole("g"), {c: _whole("d") for c in clients}
    g_opt, d_opts = _adam(g), {c: _adam(ds[c]) for c in clients}
    noise = torch.Generator().manual_seed(seeding.int_seed(case.SEED, "sampling", 0))
    batches = {c: case.batch(c) for c in clients}
    y = torch.cat([batches[c][1] for c in clients])  # real labels condition both batches
    z_d, z_g = torch.randn(N * B, 100, generator=noise), torch.randn(N * B, 100, generator=noise)
    with torch.no_grad():
        x_d = g(z_d, y)
    x_g = g(z_g, y)
    feedback = []
    for i, c in enumerate(clients):
        part = slice(i * B, (i + 1) * B)
        x, yc = batches[c]
        d_opts[c].zero_grad()
        (BCE(ds[c](x_d[part], yc), torch.zeros(B, 1)) + BCE(ds[c](x, yc), torch.ones(B, 1))).backward()
        d_opts[c].step()
        xg = x_g[part].detach().requires_grad_(True)
        BCE(ds[c](xg, yc), torch.ones(B, 1)).backward()
        feedback.append(xg.grad)
    g_opt.zero_grad()
    x_g.backward(torch.cat(feedback) / N)  # the server averages the clients' feedback
    g_opt.step()
    targets = swap_targets(clients, case.SEED, 1)
    ref = {f"0/g/{k}": v.numpy() for k, v in g.state_dict().items()}
    for c in clients:  # client t(c) now holds the discriminator c trained
        ref.update({f"{targets[c]}/d/{k}": v.numpy() for k, v in ds[c].state_dict().items()})
    _assert_states(got, ref)
    assert exposure == load_strategy("mdgan").exposure(case.case("mdgan", "real").config)
    assert ("real_labels", "client", "server") in exposure and ("parameters", "client", "client") in exposure


@pytest.mark.mpi
@pytest.mark.parametrize("pool", ["all", "domain"])
def test_centralized_pools_match_single_process(tmp_path, pool):
    """``domain``: clients 1 and 3 (mnist) pool into one cGAN, client 2 (fashion_mnist) trains its
    own; ``all``: one cGAN on the three shards. Client 1 evaluates with its pool's generator."""
    got, _ = _run(tmp_path, "centralized" if pool == "all" else "centralized:domain")
    from huscf_mpi.data import ClientBatches

    pools = [[1, 2, 3]] if pool == "all" else [[1, 3], [2]]
    noise = torch.Generator().manual_seed(seeding.int_seed(case.SEED, "sampling", 0))  # one stream, pool after pool
    ref = {}
    for index, members in enumerate(pools):
        g, d = _whole("g"), _whole("d")
        g_opt, d_opt = _adam(g), _adam(d)
        shards = [case.shard_arrays(c) for c in members]
        data = ClientBatches(np.concatenate([im for im, _ in shards]).reshape(-1, 1, 28, 28),
                             np.concatenate([lab for _, lab in shards]), case.BATCH,
                             seeding.rng(case.SEED, "batches", index))
        for _ in members:  # one step per client of the pool
            x, y = data.next()
            z = torch.randn(case.BATCH, 100, generator=noise)
            fake = g(z, y)
            d_opt.zero_grad()
            (BCE(d(fake.detach(), y), torch.zeros(case.BATCH, 1)) + BCE(d(x, y), torch.ones(case.BATCH, 1))).backward()
            d_opt.step()
            g_opt.zero_grad()
            BCE(d(fake, y), torch.ones(case.BATCH, 1)).backward()
            g_opt.step()
        for net, m in (("g", g), ("d", d)):
            ref.update({f"0/pool{index}/{net}/{k}": v.detach().numpy() for k, v in m.state_dict().items()})
    ref.update({k.replace("0/pool0/g/", "1/eval/g/"): v for k, v in ref.items() if k.startswith("0/pool0/g/")})
    _assert_states(got, ref)


@pytest.mark.mpi
def test_fslgan_iteration_chains_and_part_fedavg_match_single_process(tmp_path):
    """2 clients x 3 devices; rank 5 is too weak for part B, so client 2's chain is 2 -> 6."""
    from huscf_mpi.strategies.fslgan import placement

    info = case.fslgan_case()
    assert {c: placement(info).chain(c) for c in info.clients} == case.FSL_CHAINS
    got, exposure = _run(tmp_path, "fslgan", "uniform", ranks=7)
    B, clients = case.BATCH, list(info.clients)
    g, ds = _whole("g"), {c: _whole("d") for c in clients}
    g_opt, d_opts = _adam(g), {c: _adam(ds[c]) for c in clients}
    noise = torch.Generator().manual_seed(seeding.int_seed(case.SEED, "sampling", 0))
    y_fake = torch.cat([torch.randint(0, 10, (B,), generator=noise) for _ in clients])
    z = torch.randn(len(clients) * B, 100, generator=noise)
    x_fake = g(z, y_fake)
    feedback = []
    for i, c in enumerate(clients):  # the notebook's simultaneous step: D before its update feeds both losses
        part = slice(i * B, (i + 1) * B)
        x, y = case.batch(c)
        leaf = x_fake[part].detach().requires_grad_(True)
        out_real, out_fake = ds[c](x, y), ds[c](leaf, y_fake[part])  # real first, as the chain does
        loss_d = BCE(out_fake, torch.zeros(B, 1)) + BCE(out_real, torch.ones(B, 1))
        loss_g = BCE(out_fake, torch.ones(B, 1))
        feedback.append(torch.autograd.grad(loss_g, [leaf], retain_graph=True)[0])
        d_opts[c].zero_grad()
        loss_d.backward(inputs=list(ds[c].parameters()))
        d_opts[c].step()
    g_opt.zero_grad()
    x_fake.backward(torch.cat(feedback))  # the gradient of the sum of the clients' generator losses
    g_opt.step()
    n = np.array([case.FSL_SIZES[c] for c in clients], np.float64)
    w = n / n.sum()
    states = {c: {k: v.detach().numpy().astype(np.float64) for k, v in ds[c].state_dict().items()} for c in clients}
    ref = {f"0/g/{k}": v.numpy() for k, v in g.state_dict().items()}
    parts = {0: (1,), 1: (2, 3), 2: (4, 5)}
    for c, chain in case.FSL_CHAINS.items():
        for rank, hosted in chain:
            blocks = {b for p in hosted for b in parts[p]}
            for key in states[c]:
                if int(key.split(".")[1]) in blocks:
                    avg = sum(wi * states[k][key] for wi, k in zip(w, clients))  # FedAvg of the part
                    ref[f"{rank}/d/{key}"] = np.rint(avg) if "num_batches_tracked" in key else avg
    _assert_states(got, ref)  # rank 5 hosts nothing

    assert exposure == load_strategy("fslgan").exposure(info.config)
    rows = json.loads((tmp_path / "fslgan.json.rows").read_text())
    group = {r: c for c in clients for r in info.group(c)}
    seen = {(p, pl) for _, _, pl, p, *_ in rows}
    assert not {p for p, _ in seen} & {"raw_images", "real_labels"}  # never leave their owner
    for receiver, kind_, plane, payload, source, shape, *_ in rows:
        if payload == "smashed_data":  # activations of an owner's data stay on that client's devices
            assert receiver and source and group[receiver] == group[source], (receiver, source)
        if payload == "synthetic_images":
            assert source == 0 and receiver in clients
        if receiver == 0 and plane in ("protocol", "evaluation"):
            assert payload in ("image_gradients", "parameters"), kind_
            if payload == "image_gradients":
                assert shape == f"{B}x1x28x28" and source in clients
        if payload == "losses":  # the chain's end tells the owner its losses, never rank 0
            assert receiver in clients and group[source] == receiver != source
    assert ("smashed_data", "client", "client") in exposure


def test_fslgan_placement_walk_skips_weak_devices_and_records_overflow():
    from huscf_mpi.strategies.fslgan import parts_of, place_parts

    assert parts_of(5) == ((1,), (2, 3), (4, 5)) and parts_of(4) == ((1,), (2,), (3, 4))
    with pytest.raises(ValueError):
        parts_of(3)
    costs = [1.0, 10.0, 5.0]
    # owner first, then helpers fastest first; a device too weak for the next part is passed by
    assert place_parts((1, 7, 8), costs, {1: 1.0, 7: 4.0, 8: 20.0}) == ([1, 8, 8], [False, False, False])
    assert place_parts((1, 7, 8), costs, {1: 100.0, 7: 0.0, 8: 0.0}) == ([1, 1, 1], [False, False, False])
    assert place_parts((1, 7, 8), costs, {1: 1.0, 7: 12.0, 8: 6.0}) == ([1, 7, 8], [False, False, False])
    # nobody fits part B: where most capacity is left, marked over budget; the walk goes on from there
    assert place_parts((1, 7, 8), costs, {1: 1.0, 7: 3.0, 8: 6.0}) == ([1, 8, 7], [False, True, True])
    assert place_parts((1,), costs, {1: 0.5}) == ([1, 1, 1], [True, True, True])


def test_fslgan_config_needs_uniform_labels_and_ranks_per_client():
    from huscf_mpi.config import ConfigError, load_config
    from huscf_mpi.roles.setup import device_groups

    with pytest.raises(ConfigError, match="fake_labels: uniform"):
        load_config(None, {"strategy": "fslgan", "training.fake_labels": "real"})
    cfg = load_config(None, {"strategy": "fslgan", "training.fake_labels": "uniform", "fslgan.devices_per_client": 3})
    assert load_strategy("fslgan").devices_per_client(cfg) == 3 and load_strategy("mdgan").devices_per_client(cfg) == 1
    with pytest.raises(ConfigError, match="fslgan.devices_per_client"):
        load_config(None, {"strategy": "fslgan", "training.fake_labels": "uniform", "fslgan.devices_per_client": 0})
    assert device_groups(3, 3) == {1: (1, 4, 5), 2: (2, 6, 7), 3: (3, 8, 9)}
    assert device_groups(2, 1) == {1: (1,), 2: (2,)}


@pytest.mark.mpi
@pytest.mark.parametrize("strategy,fake_labels", [("huscf", "real"), ("mdgan", "uniform"), ("centralized", "real")])
def test_exposure_is_what_the_strategy_documents(tmp_path, strategy, fake_labels):
    _, exposure = _run(tmp_path, strategy, fake_labels)
    assert exposure == load_strategy(strategy).exposure(case.case(strategy, fake_labels).config)
    image_or_label = {"raw_images", "real_labels", "synthetic_images", "sampled_labels", "losses"}
    to_server = {p for p, _, receiver in exposure if receiver == "server"}
    if strategy == "huscf":  # the paper's claim: nothing image-, label- or loss-shaped reaches rank 0
        assert not to_server & image_or_label
    if strategy == "mdgan":
        assert ("sampled_labels", "server", "client") in exposure and not to_server & image_or_label
    if strategy == "centralized":
        assert {"raw_images", "real_labels"} <= to_server


@pytest.mark.mpi
def test_same_seed_gives_identical_numbers(tmp_path):
    first, _ = _run(tmp_path, "mdgan", tag="a")
    second, _ = _run(tmp_path, "mdgan", tag="b")
    assert set(first) == set(second)
    for key in first:
        assert np.array_equal(first[key], second[key]), key


def test_derangement_has_no_fixed_point_and_is_reproducible():
    for n in range(2, 9):
        for seed in range(20):
            p = derangement(n, np.random.default_rng(seed))
            assert sorted(p.tolist()) == list(range(n)) and not np.any(p == np.arange(n))
            assert np.array_equal(p, derangement(n, np.random.default_rng(seed)))
    # n = 3 has exactly two derangements; both must be drawn (uniform over derangements)
    seen = {tuple(derangement(3, np.random.default_rng(s))) for s in range(50)}
    assert seen == {(1, 2, 0), (2, 0, 1)}
    with pytest.raises(ValueError):
        derangement(1, np.random.default_rng(0))


def test_reader_schema_knows_every_plane_and_payload_class():
    from huscf_mpi.comm import kinds
    from huscf_mpi.results import schema

    assert (schema.PLANES, schema.PAYLOADS) == (kinds.PLANES, kinds.PAYLOADS)


def test_swap_targets_follow_the_round_and_seed():
    clients = [1, 2, 3, 4, 5]
    t1 = swap_targets(clients, 0, 1)
    assert t1 == swap_targets(clients, 0, 1) and sorted(t1.values()) == clients
    assert all(t1[c] != c for c in clients)
    assert any(swap_targets(clients, 0, r) != t1 for r in range(2, 6))
    assert swap_targets([1], 0, 1) == {}


def test_client_draws_uniform_fake_labels_from_its_own_domain():
    """A 2-class domain beside 10-class ones: the model embeds 10 labels, the client draws 0..1."""
    from types import SimpleNamespace

    from huscf_mpi.models import domain_architecture
    from huscf_mpi.strategies.base import ClientStrategy

    class Probe(ClientStrategy):
        def train_iteration(self, x, y):
            return 0.0, 0.0

        def round_end(self, round_index):
            return None

        def generate(self, z, labels):
            return z

    arch = domain_architecture("cgan28", ["mnist", "pneumoniamnist"])
    info = SimpleNamespace(arch=arch, domains={1: "mnist", 2: "pneumoniamnist"})
    transport = SimpleNamespace(pacer=SimpleNamespace(compute=None))
    assert arch.n_classes == 10
    assert Probe(info, 1, transport).n_classes == 10 and Probe(info, 2, transport).n_classes == 2
