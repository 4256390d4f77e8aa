"""One synchronous iteration over MPI equals the same iteration computed in one process.

The MPI side (tests/mpi/one_iteration.py) runs the real server and client strategies on 4
ranks with mixed cut vectors. The reference below is written independently: every part is
local, the server's blocks run on the concatenation of the participating clients' inputs in
client order, and one backward of the summed losses gives every gradient (SPEC §1).
"""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from huscf_mpi import seeding
from huscf_mpi.models import full_blocks, get_architecture

from .conftest import ROOT, run_mpi

sys.path.insert(0, str(ROOT / "tests" / "mpi"))
import one_iteration as case  # noqa: E402

pytestmark = pytest.mark.mpi
torch.set_num_threads(1)


def _server_pass(blocks, spans, inputs):
    """Run the server blocks: block b on the concatenation of clients whose span has b."""
    current = dict(inputs)
    for b in sorted(blocks):
        members = [c for c in sorted(current) if spans[c][0] < b < spans[c][1]]
        if not members:
            continue
        y = blocks[b](torch.cat([current[c] for c in members]))
        start = 0
        for c in members:
            n = current[c].shape[0]
            current[c] = y[start:start + n]
            start += n
    return current


def _reference_state():
    arch = get_architecture("cgan28")
    clients = sorted(case.CUTS)
    own = {c: full_blocks(arch, case.WIDTH, case.INIT_SEED) for c in clients}
    server = full_blocks(arch, case.WIDTH, case.INIT_SEED)
    L = {"g": 5, "d": 5}
    spans = {net: {c: (case.CUTS[c][0 if net == "g" else 2], case.CUTS[c][1 if net == "g" else 3]) for c in clients}
             for net in ("g", "d")}
    hosted = {net: sorted({b for (h, t) in spans[net].values() for b in range(h + 1, t)}) for net in ("g", "d")}

    def head(net, c, x, labels):
        for b in range(1, spans[net][c][0] + 1):
            x = own[c][net][b](x, labels) if b == 1 else own[c][net][b](x)
        return x

    def tail(net, c, x):
        for b in range(spans[net][c][1], L[net] + 1):
            x = own[c][net][b](x)
        return x

    def d_forward(images, labels):
        smashed = {c: head("d", c, images[c], labels[c]) for c in clients}
        body = _server_pass({b: server["d"][b] for b in hosted["d"]}, spans["d"], smashed)
        return {c: tail("d", c, body[c]) for c in clients}

    def params(net):
        ps = [p for c in clients for b in own[c][net] for p in own[c][net][b].parameters()
              if b <= spans[net][c][0] or b >= spans[net][c][1]]
        return ps + [p for b in hosted[net] for p in server[net][b].parameters()]

    g_opt = torch.optim.Adam(params("g"), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(params("d"), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    B = case.BATCH
    z, y_fake, x, y = {}, {}, {}, {}
    for c in clients:
        noise = torch.Generator().manual_seed(seeding.int_seed(case.SEED, "sampling", c))
        z[c] = torch.randn(B, 100, generator=noise)
        y_fake[c] = torch.randint(0, 10, (B,), generator=noise)
        x[c], y[c] = case.batch(c)

    smashed = {c: head("g", c, z[c], y_fake[c]) for c in clients}
    body = _server_pass({b: server["g"][b] for b in hosted["g"]}, spans["g"], smashed)
    fake = {c: tail("g", c, body[c]) for c in clients}

    d_opt.zero_grad()
    p_fake = d_forward({c: fake[c].detach() for c in clients}, y_fake)
    p_real = d_forward(x, y)
    sum(bce(p_fake[c], torch.zeros(B, 1)) + bce(p_real[c], torch.ones(B, 1)) for c in clients).backward()
    d_opt.step()

    g_opt.zero_grad()
    p_gen = d_forward(fake, y_fake)
    sum(bce(p_gen[c], torch.ones(B, 1)) for c in clients).backward()
    g_opt.step()

    state = {}
    for c in clients:
        for net in ("g", "d"):
            h, t = spans[net][c]
            for part, blocks in ((f"{net}_head", range(1, h + 1)), (f"{net}_tail", range(t, L[net] + 1))):
                for b in blocks:
                    for k, v in own[c][net][b].state_dict().items():
                        state[f"{c}/{part}/blocks.{b}.{k}"] = v.numpy()
    for net in ("g", "d"):
        for b in hosted[net]:
            for k, v in server[net][b].state_dict().items():
                state[f"0/{net}/blocks.{b}.{k}"] = v.numpy()
    return state


def test_one_iteration_over_mpi_matches_single_process(tmp_path: Path):
    out = tmp_path / "mpi.npz"
    proc = run_mpi(4, [sys.executable, str(ROOT / "tests" / "mpi" / "one_iteration.py"), str(out)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = dict(np.load(out))
    ref = _reference_state()
    assert set(got) == set(ref)
    moved = 0
    for key, value in ref.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-5, err_msg=key)
    # The iteration really trained every party (weights moved away from the shared init).
    init = full_blocks(get_architecture("cgan28"), case.WIDTH, case.INIT_SEED)
    for key, value in ref.items():
        rank, part, name = key.split("/")
        if name.endswith("weight") and "embed" not in name:
            net = part[0]
            _, b, rest = name.split(".", 2)
            moved += not np.allclose(init[net][int(b)].state_dict()[rest].numpy(), value)
    assert moved > 20
