"""SPEC §2 invariant: for any cut vector, head ∘ body ∘ tail equals the unsplit network."""
import numpy as np
import pytest
import torch

from huscf_mpi.models import (CutVector, NetCut, Segment, client_models, domain_architecture, full_blocks,
                              get_architecture, server_bodies, valid_cut_vectors, valid_net_cuts)
from huscf_mpi.models.params import client_blocks, dtypes_of, flatten, layout, load_state, state_of, unflatten

torch.set_num_threads(1)
ARCH = get_architecture("cgan28")
# Every architecture the domains use: the MNIST family, PneumoniaMNIST (2 classes), CIFAR-10.
ARCHS = {"cgan28": ARCH, "cgan28-2cls": get_architecture("cgan28", (1, 28, 28), 2),
         "cgan32-rgb": get_architecture("cgan32", (3, 32, 32), 10),
         "cgan28-group": get_architecture("cgan28", body_norm="group")}  # model.body_norm
WIDTH = 0.25
SEED = 7


def _inputs(net, batch=6, arch=ARCH):
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, arch.n_classes, (batch,), generator=g)
    x = torch.randn(batch, arch.z_dim, generator=g) if net == "g" else torch.rand(batch, *arch.image_shape, generator=g) * 2 - 1
    return x, labels


def test_paper_model_shapes_and_size():
    assert ARCH.output_shapes("g", 1.0) == [(256, 7, 7), (128, 14, 14), (128, 14, 14), (64, 28, 28), (1, 28, 28)]
    assert ARCH.output_shapes("d", 1.0) == [(64, 14, 14), (128, 7, 7), (128, 7, 7), (256, 3, 3), (1,)]
    n = sum(p.numel() for net in "gd" for m in ARCH.blocks(net, 1.0) for p in m.parameters())
    assert 2.9e6 < n < 3.2e6  # "about 3M parameters"


def test_valid_cuts_of_paper_model():
    # Block 3 pinned to the server, blocks 1 and 5 pinned to the client: heads {1,2} x tails {4,5}.
    assert valid_net_cuts(5, (3,)) == [NetCut(1, 4), NetCut(1, 5), NetCut(2, 4), NetCut(2, 5)]
    assert len(valid_cut_vectors(ARCH)) == 16
    # A generic architecture with more blocks works without new code.
    assert NetCut(3, 6) in valid_net_cuts(7, (4, 5))
    for bad in (NetCut(3, 4), NetCut(0, 4), NetCut(2, 6), NetCut(1, 3)):
        with pytest.raises(ValueError):
            bad.validate(5, (3,))


def test_cgan32_shapes_and_size():
    arch = ARCHS["cgan32-rgb"]
    assert arch.output_shapes("g", 1.0) == [(512, 4, 4), (256, 8, 8), (128, 16, 16), (64, 32, 32), (3, 32, 32)]
    assert arch.output_shapes("d", 1.0) == [(64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2), (1,)]
    assert arch.cluster_block == 3 and arch.pinned == {"g": (3,), "d": (3,)}
    assert len(valid_cut_vectors(arch)) == 16
    n = sum(p.numel() for net in "gd" for m in arch.blocks(net, 1.0) for p in m.parameters())
    assert 6e6 < n < 7e6
    small = sum(p.numel() for net in "gd" for m in arch.blocks(net, 0.125) for p in m.parameters())
    assert small < n / 30  # the width multiplier scales the hidden channels


def test_architecture_comes_from_the_domains():
    assert domain_architecture("cgan28", ["mnist"]) is ARCH
    pneu = domain_architecture("cgan28", ["pneumoniamnist"])
    assert pneu.key == ("cgan28", (1, 28, 28), 2, "batch") and pneu is ARCHS["cgan28-2cls"]
    assert pneu.blocks("g", 0.25)[0].embed.num_embeddings == 2
    assert domain_architecture("cgan32", ["cifar10"]).image_shape == (3, 32, 32)
    # a 2-class domain beside 10-class ones: the label embedding covers the largest count
    assert domain_architecture("cgan28", ["mnist", "fashion_mnist", "pneumoniamnist"]).n_classes == 10
    with pytest.raises(ValueError, match="mixes image shapes .*cifar10 3x32x32.*run these domains separately"):
        domain_architecture("cgan28", ["mnist", "cifar10"])
    with pytest.raises(ValueError, match="cgan28 takes 28x28 images, not 3x32x32: use model.architecture: cgan32"):
        domain_architecture("cgan28", ["cifar10"])
    with pytest.raises(KeyError, match="known: cgan28, cgan32"):
        get_architecture("dcgan64")


@pytest.mark.parametrize("arch_id,cut", [(a, v) for a, arch in ARCHS.items() for v in valid_cut_vectors(arch)],
                         ids=lambda v: "-".join(map(str, v.as_tuple())) if isinstance(v, CutVector) else v)
@pytest.mark.parametrize("net", ["g", "d"])
def test_split_equals_unsplit_forward_and_gradients(arch_id, cut, net):
    arch = ARCHS[arch_id]
    full = Segment(full_blocks(arch, WIDTH, SEED)[net])
    parts = client_models(arch, WIDTH, cut, SEED)
    body = server_bodies(arch, WIDTH, {1: cut}, SEED)[net]
    head, tail = (parts.g_head, parts.g_tail) if net == "g" else (parts.d_head, parts.d_tail)
    x, labels = _inputs(net, arch=arch)

    ref = full(x, labels)
    smashed = head(x, labels)
    body_out, _ = body({1: smashed})
    out = tail(body_out[1])
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)

    w = torch.randn_like(ref)
    (ref * w).sum().backward()
    (out * w).sum().backward()
    split_grads = {}
    for module in (head, body, tail):
        for name, p in module.named_parameters():
            split_grads[name] = p.grad
    for name, p in full.named_parameters():
        torch.testing.assert_close(split_grads[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_server_body_runs_each_block_on_the_clients_whose_span_has_it():
    cuts = {1: CutVector.from_tuple((1, 5, 1, 5)), 2: CutVector.from_tuple((2, 4, 2, 4)),
            3: CutVector.from_tuple((1, 4, 2, 5))}
    body = server_bodies(ARCH, WIDTH, cuts, SEED)["g"]
    assert body.indices == [2, 3, 4]
    full = Segment(full_blocks(ARCH, WIDTH, SEED)["g"]).eval()
    body.eval()  # eval mode: per-sample results do not depend on the union batch
    heads = {c: Segment({b: full.blocks[str(b)] for b in range(1, v.g.head + 1)}) for c, v in cuts.items()}
    inputs = {c: _inputs("g", batch=3 + c) for c in cuts}
    with torch.no_grad():
        smashed = {c: heads[c](*inputs[c]) for c in cuts}
        out, captured = body(smashed, capture=3)
        for c, v in cuts.items():
            x = smashed[c]
            for b in range(v.g.head + 1, v.g.tail):
                x = full.blocks[str(b)](x)
            torch.testing.assert_close(out[c], x)
    assert set(captured) == {1, 2, 3}


@pytest.mark.parametrize("family", ["cgan28", "cgan32"])
@pytest.mark.parametrize("norm", ["group", "layer", "none"])
def test_a_per_sample_body_norm_makes_each_clients_body_output_independent_of_the_others(family, norm):
    # model.body_norm (issue 10): what the server body computes for one client's smashed data
    # must not depend on which other clients share the pass (sync: all, buffered: some,
    # sequential: none), in training mode too; with SPEC §2's BatchNorm it does.
    arch = get_architecture(family, body_norm=norm)
    assert arch.key[-1] == norm and arch is get_architecture(*arch.key)
    expected = {"group": torch.nn.GroupNorm, "layer": torch.nn.GroupNorm, "none": torch.nn.Identity}[norm]
    for net in "gd":
        blocks = arch.blocks(net, WIDTH)
        assert isinstance(blocks[0].norm, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))  # block 1 never leaves the client
        for block in blocks[1:4]:
            norm_layer = block[1]
            assert type(norm_layer) is expected
            if norm == "group":
                assert norm_layer.num_channels % norm_layer.num_groups == 0 and 1 < norm_layer.num_groups <= 8
            if norm == "layer":
                assert norm_layer.num_groups == 1
    cuts = {1: CutVector.from_tuple((1, 5, 1, 5)), 2: CutVector.from_tuple((1, 5, 1, 5))}
    for a, check in ((arch, torch.testing.assert_close), (get_architecture(family), _differs)):
        parts = client_models(a, WIDTH, cuts[1], SEED)
        body = server_bodies(a, WIDTH, cuts, SEED)["g"].train()
        with torch.no_grad():
            smashed = {c: parts.g_head(*_inputs("g", batch=4 + c, arch=a)) for c in cuts}
            together, _ = body(smashed)
            alone, _ = body({1: smashed[1]})
        check(together[1], alone[1])


def _differs(a, b):
    assert not torch.allclose(a, b, atol=1e-4)


def test_group_count_is_the_largest_divisor_up_to_eight():
    from huscf_mpi.models.norms import groups

    assert [groups(c) for c in (1, 2, 7, 9, 12, 16, 64, 13)] == [1, 2, 7, 3, 6, 8, 8, 1]


def test_an_unknown_body_norm_is_refused():
    with pytest.raises(ValueError, match="unknown body norm 'instance'; choose one of batch, group, layer, none"):
        get_architecture("cgan28", body_norm="instance")


@pytest.mark.parametrize("arch_id", list(ARCHS))
def test_parameter_buffer_round_trip(arch_id):
    arch = ARCHS[arch_id]
    cut = CutVector.from_tuple((2, 4, 1, 5))
    parts = client_models(arch, WIDTH, cut, SEED)
    modules = {"g": [parts.g_head, parts.g_tail], "d": [parts.d_head, parts.d_tail]}
    lay = layout(arch, WIDTH, client_blocks(arch, cut))
    state = state_of(modules)
    assert {b for net in state for b in state[net]} == {1, 2, 4, 5}
    flat = flatten(state, lay)
    assert flat.dtype == np.float32 and flat.size == sum(v.size for n in state.values() for b in n.values() for v in b.values())
    other = client_models(arch, WIDTH, cut, SEED + 1)
    other_modules = {"g": [other.g_head, other.g_tail], "d": [other.d_head, other.d_tail]}
    load_state(other_modules, unflatten(flat, lay, dtypes_of(arch, WIDTH)))
    for a, b in zip(parts.g_head.state_dict().values(), other.g_head.state_dict().values()):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b)


# --- optimizer ---------------------------------------------------------------------------------

@pytest.mark.parametrize("betas,lr", [((0.5, 0.999), 2e-4), ((0.9, 0.99), 1e-2)])
def test_adam_is_bit_identical_to_torch_optim(betas, lr):
    from huscf_mpi.models.optim import Adam

    gen = torch.Generator().manual_seed(0)
    ours = [torch.randn(7, 5, generator=gen, requires_grad=True), torch.randn(3, generator=gen, requires_grad=True)]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    a, b = Adam(ours, lr=lr, betas=betas), torch.optim.Adam(theirs, lr=lr, betas=betas)
    for step in range(60):
        grads = [torch.randn(p.shape, generator=gen) * (step + 1) for p in ours]
        for opt, params in ((a, ours), (b, theirs)):
            opt.zero_grad(set_to_none=True)
            for p, g in zip(params, grads):
                if not (step % 7 == 3 and p.ndim == 1):  # a step without a gradient is skipped by both
                    p.grad = g.clone()
            opt.step()
        for p, q in zip(ours, theirs):
            assert torch.equal(p, q), step


def test_adam_does_not_import_dynamo():
    import subprocess
    import sys

    code = ("import sys, torch; from huscf_mpi.models.optim import Adam; p = torch.zeros(3, requires_grad=True); "
            "o = Adam([p], lr=1e-3); p.grad = torch.ones(3); o.step(); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_backward_from_gives_the_gradients_of_autograd_backward():
    from huscf_mpi.models.optim import backward_from

    gen = torch.Generator().manual_seed(1)
    w = torch.randn(6, 4, generator=gen, requires_grad=True)
    x = torch.randn(5, 6, generator=gen)
    grads = [torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)]
    backward_from([x @ w, torch.tanh(x @ w)], grads)
    ours = w.grad.clone()
    w.grad = None
    torch.autograd.backward([x @ w, torch.tanh(x @ w)], grads)
    torch.testing.assert_close(ours, w.grad, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        backward_from([x @ w], [torch.zeros(4, 5)])
