"""HuSCF-GAN: heterogeneous U-shaped split learning + KLD-weighted clustered FL.

Source: Tawfilis et al., arXiv 2507.12979 (TMLR 2026), §3; SPEC §1 (iteration) and §3
(federation round).

Where things live: each client holds the head and tail of G and of D (its cut vector) with
their Adam optimizers, its data and its labels; the server holds the G and D bodies (the union
of every client's server span) with theirs.

On the wire per iteration and client (B = batch, shapes per the cut): four smashed-data
tensors up (G head output, D head output on fakes, on reals, and in the G step, float32
(B, *activation)), their four body outputs down, and the matching gradients both ways: 16
messages, all point-to-point into buffers declared at set-up. At a round's end the client's
head and tail parameters go up and the cluster aggregate comes down (float32, flat).
Nothing image-, label- or loss-shaped leaves a client on the protocol plane.
Deviation: none in the algorithm; ``training.fake_labels`` chooses SPEC §1's conditioning.
``training.mode: buffered | sequential`` serve the same phases per buffer of clients instead
of in lock-step (issue 10, :mod:`huscf_mpi.strategies.asynchronous`): an extension beyond the
paper, which is synchronous.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict

import numpy as np
import torch
from torch import nn

from types import SimpleNamespace

from .. import seeding
from ..comm import DeadlineExceeded, kind
from ..errors import ClientsLost
from ..federation.staleness import parse_staleness
from . import asynchronous
from ..models import client_models, server_bodies
from ..models.params import client_blocks, dtypes_of, flatten, layout, layout_size, load_state, state_of, unflatten
from ..models.optim import Adam, backward_from
from .base import ClientStrategy, RoundRecord, ServerStrategy, Strategy, fake_labels


def _kinds() -> SimpleNamespace:
    smashed = "smashed_data"
    out = {}
    # (pass, first tag): G forward/backward (SPEC §1 steps 1, 4); D on fakes (2), reals (3), in the G step (4).
    for prefix, tag in (("g", 10), ("d_fake", 20), ("d_real", 30), ("d_gen", 40)):
        names = (("G_SMASHED", "G_BODY_OUT", "G_BODY_GRAD", "G_SMASHED_GRAD") if prefix == "g" else
                 tuple(f"{prefix.upper()}_{n}" for n in ("SMASHED", "BODY_OUT", "BODY_GRAD", "SMASHED_GRAD")))
        for i, n in enumerate(names):
            out[n] = kind(n.lower(), tag + i, "protocol", smashed)
    # Evaluation: generation through the same U path, no gradients.
    out["EVAL_SMASHED"] = kind("eval_smashed", 50, "evaluation", smashed)
    out["EVAL_BODY_OUT"] = kind("eval_body_out", 51, "evaluation", smashed)
    # Federation (SPEC §3): flat float32 buffers of the client-hosted blocks.
    out["PARAMS_UP"] = kind("params_up", 60, "protocol", "parameters")
    out["PARAMS_DOWN"] = kind("params_down", 61, "protocol", "parameters")
    return SimpleNamespace(**out)


Kind = _kinds()
log = logging.getLogger("huscf_mpi")

# (smashed up, body output down, grad of body output up, grad of smashed data down) per D pass.
D_PASSES = {
    "fake": (Kind.D_FAKE_SMASHED, Kind.D_FAKE_BODY_OUT, Kind.D_FAKE_BODY_GRAD, Kind.D_FAKE_SMASHED_GRAD),
    "real": (Kind.D_REAL_SMASHED, Kind.D_REAL_BODY_OUT, Kind.D_REAL_BODY_GRAD, Kind.D_REAL_SMASHED_GRAD),
    "gen": (Kind.D_GEN_SMASHED, Kind.D_GEN_BODY_OUT, Kind.D_GEN_BODY_GRAD, Kind.D_GEN_SMASHED_GRAD),
}
G_PASS = (Kind.G_SMASHED, Kind.G_BODY_OUT, Kind.G_BODY_GRAD, Kind.G_SMASHED_GRAD)


def message_shapes(info, client: int) -> dict:
    """Shape of every training/evaluation message between ``client`` and the server.

    Smashed data of a network is the output of the client's last head block; the body output
    is the output of the block before its first tail block; gradients share those shapes.
    """
    cfg, arch, cut = info.config, info.arch, info.cuts[client]
    B, E = cfg.training.batch_size, cfg.evaluation.batch_size
    shapes = {}
    for net, passes in (("g", [G_PASS]), ("d", list(D_PASSES.values()))):
        out = arch.output_shapes(net, cfg.model.width)
        c = cut.net(net)
        smashed, body = out[c.head - 1], out[c.tail - 2]
        for up, down, grad_up, grad_down in passes:
            shapes.update({up: (B, *smashed), grad_down: (B, *smashed), down: (B, *body), grad_up: (B, *body)})
        if net == "g":
            shapes.update({Kind.EVAL_SMASHED: (E, *smashed), Kind.EVAL_BODY_OUT: (E, *body)})
    return shapes


def part_flops(info, cut) -> dict[tuple[str, str], float]:
    """FLOPs of each client part per pass: ``{("g_head", "f"): ..., ("d_tail", "b"): ...}``."""
    out = {}
    for net in ("g", "d"):
        c, L = cut.net(net), info.arch.n_blocks(net)
        for part, blocks in (("head", range(1, c.head + 1)), ("tail", range(c.tail, L + 1))):
            for d, key in (("f", "forward"), ("b", "backward")):
                out[f"{net}_{part}", d] = float(sum(info.block_flops[net][key][b - 1] for b in blocks))
    return out


def _adam(params, cfg) -> Adam:
    return Adam(params, lr=cfg.training.lr, betas=tuple(cfg.training.betas))


class HuSCFClient(ClientStrategy):
    """A client: G head/tail and D head/tail with their own Adam optimizers (SPEC §1)."""

    def __init__(self, info, client, transport, shard=None):
        super().__init__(info, client, transport, shard)
        cfg = info.config
        self.m = client_models(info.arch, cfg.model.width, info.cuts[client], info.init_seed)
        self.g_opt = _adam([*self.m.g_head.parameters(), *self.m.g_tail.parameters()], cfg)
        self.d_opt = _adam([*self.m.d_head.parameters(), *self.m.d_tail.parameters()], cfg)
        self.bce = nn.BCELoss()
        self.noise = torch.Generator().manual_seed(seeding.int_seed(cfg.seed, "sampling", client))
        self.batch = cfg.training.batch_size
        self.layout = layout(info.arch, cfg.model.width, client_blocks(info.arch, info.cuts[client]))
        self.dtypes = dtypes_of(info.arch, cfg.model.width)
        evaluates = client in info.evaluators.values()
        for kd, shape in message_shapes(info, client).items():
            if kd in (Kind.EVAL_SMASHED, Kind.EVAL_BODY_OUT) and not evaluates:
                continue
            transport.declare(0, kd, shape, send=kd in _UP)
        transport.declare(0, Kind.PARAMS_UP, (layout_size(self.layout),))
        transport.declare(0, Kind.PARAMS_DOWN, (layout_size(self.layout),), send=False)
        self.flops = part_flops(info, info.cuts[client]) if client in info.emulated else defaultdict(float)
        self.asynchronous = cfg.training.mode != "sync"
        if self.asynchronous:
            transport.declare(0, asynchronous.GRANT, (1,), np.int64, send=False)

    def next_iteration(self, done):
        if not self.asynchronous:
            return super().next_iteration(done)
        # The first iteration of a round is granted at its start; each later one by the server.
        return done == 0 or int(self.t.recv(0, asynchronous.GRANT)[0]) == asynchronous.TRAIN_ON

    def _up(self, kind, tensor: torch.Tensor) -> None:
        self.t.isend(0, kind, tensor)

    def _down(self, kind, requires_grad: bool = False) -> torch.Tensor:
        return self.t.recv_tensor(0, kind, requires_grad=requires_grad)

    def train_iteration(self, x, y):
        B, m, pace, F = self.batch, self.m, self.pace, self.flops
        z = torch.randn(B, self.info.arch.z_dim, generator=self.noise)
        y_fake = fake_labels(self.info.config, y, self.noise, self.n_classes)
        ones, zeros = torch.ones(B, 1), torch.zeros(B, 1)

        # 1. Generate through head -> server body -> tail.
        with pace(F["g_head", "f"]):
            a = m.g_head(z, y_fake)
        self._up(Kind.G_SMASHED, a)
        s = self._down(Kind.G_BODY_OUT, requires_grad=True)
        with pace(F["g_tail", "f"]):
            fake = m.g_tail(s)

        # 2-3. Discriminator on fakes and reals; both uploads go out before either reply is awaited.
        self.d_opt.zero_grad(set_to_none=True)
        with pace(2 * F["d_head", "f"]):
            h_fake = m.d_head(fake.detach(), y_fake)
            h_real = m.d_head(x, y)
        self._up(Kind.D_FAKE_SMASHED, h_fake)
        self._up(Kind.D_REAL_SMASHED, h_real)
        o_fake = self._down(Kind.D_FAKE_BODY_OUT, requires_grad=True)
        with pace(F["d_tail", "f"]):
            loss_fake = self.bce(m.d_tail(o_fake), zeros)
        o_real = self._down(Kind.D_REAL_BODY_OUT, requires_grad=True)
        with pace(F["d_tail", "f"] + 2 * F["d_tail", "b"]):
            loss_real = self.bce(m.d_tail(o_real), ones)
            (loss_fake + loss_real).backward()
        self._up(Kind.D_FAKE_BODY_GRAD, o_fake.grad)
        self._up(Kind.D_REAL_BODY_GRAD, o_real.grad)
        grads = [self._down(Kind.D_FAKE_SMASHED_GRAD), self._down(Kind.D_REAL_SMASHED_GRAD)]
        with pace(2 * F["d_head", "b"]):
            backward_from([h_fake, h_real], grads)
            self.d_opt.step()

        # 4. Generator step: D forward on the same fakes, backward through D (not stepped) and G.
        self.g_opt.zero_grad(set_to_none=True)
        with pace(F["d_head", "f"]):
            h_gen = m.d_head(fake, y_fake)
        self._up(Kind.D_GEN_SMASHED, h_gen)
        o_gen = self._down(Kind.D_GEN_BODY_OUT, requires_grad=True)
        with pace(F["d_tail", "f"] + F["d_tail", "b"]):
            loss_g = self.bce(m.d_tail(o_gen), ones)
            loss_g.backward()
        self._up(Kind.D_GEN_BODY_GRAD, o_gen.grad)
        grad = self._down(Kind.D_GEN_SMASHED_GRAD)
        with pace(F["d_head", "b"] + F["g_tail", "b"]):  # through the D head into the fakes, then the G tail
            backward_from([h_gen], [grad])
        self._up(Kind.G_BODY_GRAD, s.grad)
        grad = self._down(Kind.G_SMASHED_GRAD)
        with pace(F["g_head", "b"]):
            backward_from([a], [grad])
            self.g_opt.step()
        return float((loss_fake + loss_real).detach()), float(loss_g.detach())

    def round_end(self, round_index):
        parts = {"g": [self.m.g_head, self.m.g_tail], "d": [self.m.d_head, self.m.d_tail]}
        self.t.isend(0, Kind.PARAMS_UP, flatten(state_of(parts), self.layout))
        load_state(parts, unflatten(self.t.recv(0, Kind.PARAMS_DOWN), self.layout, self.dtypes))

    @torch.no_grad()
    def generate(self, z, labels):
        g_head, g_tail = self.m.g_head, self.m.g_tail
        g_head.eval(), g_tail.eval()
        try:
            self.t.isend(0, Kind.EVAL_SMASHED, g_head(z, labels))
            return g_tail(self.t.recv_tensor(0, Kind.EVAL_BODY_OUT))
        finally:
            g_head.train(), g_tail.train()


_UP = {Kind.G_SMASHED, Kind.G_BODY_GRAD, Kind.EVAL_SMASHED,
       *(p[0] for p in D_PASSES.values()), *(p[2] for p in D_PASSES.values())}


class HuSCFServer(ServerStrategy):
    """The server: the G and D bodies (union of all clients' spans) and their Adam optimizers."""

    def __init__(self, info, transport):
        super().__init__(info, transport)
        cfg = info.config
        self.bodies = server_bodies(info.arch, cfg.model.width, info.cuts, info.init_seed)
        self.g_opt = _adam(self.bodies["g"].parameters(), cfg)
        self.d_opt = _adam(self.bodies["d"].parameters(), cfg)
        self.clients = list(info.clients)
        self.features: dict[int, np.ndarray] = {}
        self.dtypes = dtypes_of(info.arch, cfg.model.width)
        self.layouts = {c: layout(info.arch, cfg.model.width, client_blocks(info.arch, info.cuts[c]))
                        for c in self.clients}
        self.server_layout = layout(info.arch, cfg.model.width,
                                    {net: body.indices for net, body in self.bodies.items()})
        evaluators = set(info.evaluators.values())
        for c in self.clients:
            for kd, shape in message_shapes(info, c).items():
                if kd in (Kind.EVAL_SMASHED, Kind.EVAL_BODY_OUT) and c not in evaluators:
                    continue
                transport.declare(c, kd, shape, send=kd not in _UP)
            n = layout_size(self.layouts[c])
            transport.declare(c, Kind.PARAMS_UP, (n,), send=False)
            transport.declare(c, Kind.PARAMS_DOWN, (n,))
        t = cfg.training
        self.mode, self.schedule, self.rounds_served = t.mode, None, 0
        self.round_started, self.lost_at = time.perf_counter(), {}
        self.buffer = asynchronous.buffer_size(t.mode, t.buffer, len(self.clients))
        self.staleness = parse_staleness(t.staleness)
        if self.mode != "sync":
            for c in self.clients:
                transport.declare(c, asynchronous.GRANT, (1,), np.int64)

    # The server's part of an iteration (SPEC §1), phase by phase: the message kinds a phase
    # needs from every client it serves, and the method that runs it. The synchronous mode runs
    # them in lock-step for all clients; the asynchronous modes per buffer (asynchronous.py).
    PHASES = (
        ((Kind.G_SMASHED,), "_g_forward"),
        ((Kind.D_FAKE_SMASHED, Kind.D_REAL_SMASHED), "_d_forward"),
        ((Kind.D_FAKE_BODY_GRAD, Kind.D_REAL_BODY_GRAD), "_d_backward"),
        ((Kind.D_GEN_SMASHED,), "_d_gen_forward"),
        ((Kind.D_GEN_BODY_GRAD,), "_d_gen_backward"),
        ((Kind.G_BODY_GRAD,), "_g_backward"),
    )

    def train_iteration(self, last_of_round):
        members, state = list(self.clients), {"capture": last_of_round}
        for kinds, name in self.PHASES:
            getattr(self, name)(members, {kd: self.t.recv_many(members, kd) for kd in kinds}, state)

    def train_round(self, step):
        if self.mode == "sync":
            return super().train_round(step)
        self.rounds_served += 1
        self.round_started = time.perf_counter()
        self.schedule = asynchronous.serve_round(self, step, self.buffer, self.info.config.training.deadline_ms,
                                                 self.info.replay.get(self.rounds_served))

    def _send(self, members, kind, tensors: dict[int, torch.Tensor]) -> None:
        for c in members:
            self.t.isend(c, kind, tensors[c])

    def _g_forward(self, members, got, st):
        st["a"] = _leaves(got[Kind.G_SMASHED])
        st["g"] = _snapshot(self.bodies["g"])  # the forward's weights, until its backward (asynchronous.py)
        st["s"], _ = _call(self.bodies["g"], st["g"], st["a"])
        self._send(members, Kind.G_BODY_OUT, st["s"])

    def _d_forward(self, members, got, st):
        d_body = self.bodies["d"]
        st["d"] = _snapshot(d_body)
        st["h_fake"] = _leaves(got[Kind.D_FAKE_SMASHED])
        st["o_fake"], _ = _call(d_body, st["d"], st["h_fake"])
        self._send(members, Kind.D_FAKE_BODY_OUT, st["o_fake"])
        capture = st.get("capture", True)
        st["h_real"] = _leaves(got[Kind.D_REAL_SMASHED])
        st["o_real"], captured = _call(d_body, st["d"], st["h_real"],
                                       capture=self.info.arch.cluster_block if capture else None)
        self._send(members, Kind.D_REAL_BODY_OUT, st["o_real"])
        if capture:  # SPEC §3 step 1: batch-mean activation of each client's (last) real batch
            self.features.update({c: captured[c].detach().mean(0).numpy().copy() for c in members})

    def _d_backward(self, members, got, st):
        _backward(members, [st["o_fake"], st["o_real"]], [got[Kind.D_FAKE_BODY_GRAD], got[Kind.D_REAL_BODY_GRAD]])
        self._send(members, Kind.D_FAKE_SMASHED_GRAD, {c: st["h_fake"][c].grad for c in members})
        self._send(members, Kind.D_REAL_SMASHED_GRAD, {c: st["h_real"][c].grad for c in members})
        _step(self.bodies["d"], st.pop("d"), self.d_opt)

    def _d_gen_forward(self, members, got, st):
        st["d_gen"] = _snapshot(self.bodies["d"])  # D after this buffer's step, as in SPEC §1 step 4
        st["h_gen"] = _leaves(got[Kind.D_GEN_SMASHED])
        st["o_gen"], _ = _call(self.bodies["d"], st["d_gen"], st["h_gen"])
        self._send(members, Kind.D_GEN_BODY_OUT, st["o_gen"])

    def _d_gen_backward(self, members, got, st):
        _backward(members, [st["o_gen"]], [got[Kind.D_GEN_BODY_GRAD]])
        self._send(members, Kind.D_GEN_SMASHED_GRAD, {c: st["h_gen"][c].grad for c in members})
        del st["d_gen"]  # D is not stepped in the G step: these parameter gradients are dropped

    def _g_backward(self, members, got, st):
        _backward(members, [st["s"]], [got[Kind.G_BODY_GRAD]])
        self._send(members, Kind.G_SMASHED_GRAD, {c: st["a"][c].grad for c in members})
        _step(self.bodies["g"], st.pop("g"), self.g_opt)

    def lose(self, clients, why) -> None:
        """Declare ``clients`` lost (asynchronous modes): no more messages to or from them; raises
        :class:`~huscf_mpi.errors.ClientsLost` once fewer than ``training.min_clients`` are live."""
        self.lost.update(clients)
        for c in clients:
            self.t.abandon(c)
            self.lost_at[c] = time.perf_counter() - self.round_started
        live = len(self.clients) - len(self.lost)
        log.warning("client(s) %s lost (%s); %d clients live", sorted(clients), why, live)
        if live < self.info.config.training.min_clients:
            raise ClientsLost(f"{live} clients live, fewer than training.min_clients "
                              f"({self.info.config.training.min_clients}): clients {sorted(self.lost)} were lost")

    def round_end(self, round_index):
        # scikit-learn is imported here, on the server only: it costs ~130 MB per process.
        from sklearn.metrics import adjusted_rand_score

        from ..federation import federate

        cfg, info = self.info.config, self.info
        live = [c for c in self.clients if c not in self.lost]
        try:
            got = self.t.recv_many(live, Kind.PARAMS_UP)
        except DeadlineExceeded as e:
            if self.mode == "sync":
                raise  # the engine ends the run as failed (roles/run.py)
            self.lose(e.missing, e)
            live = [c for c in live if c not in self.lost]
            got = self.t.recv_many(live, Kind.PARAMS_UP)
        client_states = {c: unflatten(got[c], self.layouts[c], self.dtypes) for c in live}
        server_parts = {net: [body] for net, body in self.bodies.items()}
        features = np.stack([self.features[c] for c in live])
        k = {"domains": len(cfg.data.domains), "auto": None}.get(cfg.federation.clusters, cfg.federation.clusters)
        k = None if k is None else min(k, len(live))
        n_samples = np.array([info.sizes[c] for c in live], dtype=np.float64)
        arrays = {}
        if self.schedule is not None:  # asynchronous: a stale client's contribution counts less
            sched = self.schedule
            staleness = _by_client(sched.clients, sched.staleness(), self.clients, -1)
            staleness[[self.clients.index(c) for c in self.lost]] = -1  # lost: no contribution
            factor = self.staleness(np.maximum(staleness, 0))
            n_samples = n_samples * factor[[self.clients.index(c) for c in live]]
            served_client, served_buffer = sched.record()
            width = len(self.clients) * info.iterations_per_round  # fewer when clients were lost: -1 after
            arrays = {"iterations": _by_client(sched.clients, sched.iterations_done(), self.clients, 0),
                      "staleness": staleness, "staleness_factor": np.where(staleness >= 0, factor, np.nan),
                      "buffer_sizes": sched.buffer_histogram(len(self.clients)),
                      "served_client": _padded(served_client, width), "served_buffer": _padded(served_buffer, width),
                      "served_events": _padded(np.array(sched.events, np.int32), len(self.PHASES) * width),
                      "live": np.array([c not in self.lost for c in self.clients], dtype=np.int8),
                      "lost_seconds": np.array([self.lost_at.pop(c, np.nan) for c in self.clients])}
        out = federate(
            round_index=round_index, client_ids=live, features=features,
            n_samples=n_samples,
            client_states=client_states, server_state=state_of(server_parts), k=k,
            alpha=cfg.federation.alpha, warmup_rounds=cfg.federation.warmup_rounds,
            seed=cfg.seed)
        for c in live:
            self.t.isend(c, Kind.PARAMS_DOWN, flatten(out.client_states[c], self.layouts[c]))
        load_state(server_parts, out.server_state)
        ari = adjusted_rand_score([info.domains[c] for c in live], out.labels)
        arrays.update({"cluster_labels": _by_client(live, out.labels, self.clients, -1),
                       **{name: _by_client(live, getattr(out, name), self.clients, np.nan)
                          for name in ("kld", "weights", "global_kld", "global_weights")},
                       "adjusted_rand_index": np.float64(ari)})
        mode = "FedAvg warm-up" if out.warmup else f"k={len(set(out.labels.tolist()))}"
        served = ""
        if self.schedule is not None:
            served = (f"; {self.mode}: {self.schedule.buffers} buffers, iterations per client "
                      f"{arrays['iterations'].tolist()}, staleness {arrays['staleness'].tolist()}"
                      + (f", lost {sorted(self.lost)}" if self.lost else ""))
            self.schedule = None
        return RoundRecord(arrays, log=f"federation ({mode}): clusters {out.labels.tolist()}, "
                                       f"ARI vs domains {ari:.3f}{served}")

    @torch.no_grad()
    def serve_generation(self, clients):
        g_body = self.bodies["g"]
        g_body.eval()
        try:
            got = self.t.recv_many(clients, Kind.EVAL_SMASHED)
            for c in clients:
                out, _ = g_body({c: torch.from_numpy(got[c])})
                self.t.isend(c, Kind.EVAL_BODY_OUT, out[c])
        finally:
            g_body.train()


def _leaves(got: dict[int, np.ndarray]) -> dict[int, torch.Tensor]:
    """Received smashed data as leaves whose gradients go back to their clients."""
    return {c: torch.from_numpy(buf).requires_grad_(True) for c, buf in got.items()}


def _snapshot(body: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``body``'s parameters to run one buffer's forward and backward on (weight stashing)."""
    return {name: p.detach().clone().requires_grad_(p.requires_grad) for name, p in body.named_parameters()}


def _call(body: nn.Module, params: dict[str, torch.Tensor], inputs, capture=None):
    """``body(inputs, capture)`` with ``params`` for its parameters; BatchNorm statistics are the live ones."""
    return torch.func.functional_call(body, {**params, **dict(body.named_buffers())}, (inputs,), {"capture": capture})


def _backward(members, outputs: list[dict[int, torch.Tensor]], grads: list[dict[int, np.ndarray]]) -> None:
    """Backpropagate the clients' gradients of the body outputs (per output, clients in order)."""
    tensors = [out[c] for out in outputs for c in members]
    torch.autograd.backward(tensors, [torch.from_numpy(g[c]) for g in grads for c in members])


def _step(body: nn.Module, params: dict[str, torch.Tensor], opt) -> None:
    """Step ``body``'s optimizer with the gradients a buffer left on its snapshot ``params``."""
    for name, p in body.named_parameters():
        p.grad = params[name].grad
    opt.step()
    opt.zero_grad(set_to_none=True)


def _by_client(ids, values, clients, fill) -> np.ndarray:
    """``values`` (one per id of ``ids``) spread over every client of ``clients``; ``fill`` for the rest."""
    values = np.asarray(values)
    out = np.full(len(clients), fill, dtype=np.result_type(values.dtype, np.asarray(fill).dtype))
    out[[clients.index(c) for c in ids]] = values
    return out


def _padded(values: np.ndarray, width: int) -> np.ndarray:
    return np.concatenate([values, np.full(width - len(values), -1, dtype=values.dtype)])


def _exposure(config) -> set[tuple[str, str, str]]:
    grants = {("control", "server", "client")} if config.training.mode != "sync" else set()
    return {("smashed_data", "client", "server"), ("smashed_data", "server", "client"),
            ("parameters", "client", "server"), ("parameters", "server", "client"), *grants}


STRATEGY = Strategy("huscf", HuSCFClient, HuSCFServer, uses_cuts=True, exposure=_exposure,
                    modes=("sync", "buffered", "sequential"))
