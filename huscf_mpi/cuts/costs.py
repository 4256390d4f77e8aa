"""Per-block compute and communication costs of an architecture (SPEC §5, "Costs").

Two counting modes:

``"true"`` (default)
    FLOPs as counted by ``torch.utils.flop_counter.FlopCounterMode``: every block is run on
    the ``meta`` device (shapes only, no arithmetic) at batch ``B``, forward then backward
    from an all-ones output gradient. Blocks 2..L receive an input that requires grad, so
    their backward counts the gradient w.r.t. the input *and* the weights (2x forward for a
    convolution). Block 1's data input (z or the image) does not require grad, but its
    backward still counts the input-side GEMM, since the trainable label embedding is
    concatenated into that input. The counter counts matmuls and convolutions only
    (BatchNorm, activations and bias adds count 0), exactly as torch reports them.

``"reference"``
    The hand table of the original implementation, reproduced so a predicted latency can be
    set beside the paper's 7.68 s. Costs of this mode also select the original's latency
    model (``latency.LatencyRules.reference()``: server-side D compute counted once, server
    block 2's backward charged with block L-1's FLOPs, downloads at the server's link; SPEC §5),
    so the whole prediction is the original's. Per layer, per sample, then multiplied by ``B``:

    ======================  ==========================================  ==================================
    layer                   forward                                     backward
    ======================  ==========================================  ==================================
    Conv2d, ConvTranspose2d 2·Cin·Cout·kh·kw·Hout·Wout + Cout·Hout·Wout  4·Cin·Cout·kh·kw·Hout·Wout + Cout·Hout·Wout
    Linear                  2·in·out + out                              4·in·out + out
    BatchNorm2d             8·C·H·W                                     11·C·H·W
    BatchNorm1d             8·features                                  11·features
    GroupNorm               8·C·H·W (ours: as BatchNorm2d)              11·C·H·W
    ReLU / LeakyReLU        1 / 2 per output element                    2 / 3 per output element
    Tanh / Sigmoid          5 / 3 per output element                    3 / 2 per output element
    Embedding, Flatten      0                                           0
    ======================  ==========================================  ==================================

    The network's first Conv/Linear layer has backward = forward (no input gradient). Note the
    transposed convolution is counted over its *output* pixels, 4x the true count at stride 2:
    G block 2 at batch 64, width 1 is 13.17 GFLOP here and 3.29 GFLOP in ``"true"`` mode.

The first ``"true"`` call in a process takes a few seconds more: torch's FLOP counter imports
``torch._dynamo`` on first use.

Output bytes are the same in both modes: 4 bytes (fp32) x B x the block's per-sample output
size — the smashed data a cut after that block sends, and the size of its gradient.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..models.architecture import GENERATOR, NETS, Architecture

COST_MODES = ("true", "reference")
FP32_BYTES = 4


@dataclass(frozen=True)
class BlockCosts:
    """Costs of every block of one network for one batch.

    Attributes
    ----------
    forward_flops : float64 (n_blocks,), FLOPs of block b's forward pass at index b-1.
    backward_flops : float64 (n_blocks,), FLOPs of block b's backward pass.
    output_bytes : float64 (n_blocks,), bytes of block b's output activation (fp32), which is
        also the size of the gradient w.r.t. it.
    batch_size : int, the batch B these counts are for.
    mode : ``"true"`` or ``"reference"``, how the FLOPs were counted, or ``"custom"``.
        ``latency`` reads it: ``"reference"`` costs get the original's latency model
        (``latency.LatencyRules.for_costs``), the others the corrected one.
    """

    forward_flops: np.ndarray
    backward_flops: np.ndarray
    output_bytes: np.ndarray
    batch_size: int = 0
    mode: str = "custom"

    def __post_init__(self):
        arrays = [np.asarray(a, dtype=np.float64) for a in (self.forward_flops, self.backward_flops, self.output_bytes)]
        if any(a.ndim != 1 for a in arrays) or len({a.size for a in arrays}) != 1 or arrays[0].size < 3:
            raise ValueError("forward_flops, backward_flops and output_bytes must be 1-D of one length >= 3")
        if any((a < 0).any() or not np.isfinite(a).all() for a in arrays):
            raise ValueError("costs must be finite and non-negative")
        for name, a in zip(("forward_flops", "backward_flops", "output_bytes"), arrays):
            a.setflags(write=False)
            object.__setattr__(self, name, a)

    @property
    def n_blocks(self) -> int:
        return int(self.forward_flops.size)


def block_costs(arch: Architecture, width: float = 1.0, batch_size: int = 64, mode: str = "true") -> dict[str, BlockCosts]:
    """Per-block FLOPs and output bytes of both networks of ``arch``.

    Parameters
    ----------
    arch : the architecture (e.g. ``get_architecture("cgan28")``).
    width : channel multiplier (1.0 = paper model).
    batch_size : B, samples per client batch; every count is for one batch.
    mode : ``"true"`` (torch's FLOP counter) or ``"reference"`` (the original hand table,
        and with it the original's latency model in ``latency``); see the module docstring
        for exactly what each counts.

    Returns
    -------
    ``{"g": BlockCosts, "d": BlockCosts}``.

    Raises
    ------
    ValueError : unknown ``mode``, ``batch_size < 1`` or ``width <= 0``; in reference mode, a
        block containing a layer with parameters that the hand table has no formula for.
    """
    if mode not in COST_MODES:
        raise ValueError(f"cost mode must be one of {COST_MODES}, not {mode!r}")
    if batch_size < 1 or width <= 0:
        raise ValueError(f"need batch_size >= 1 and width > 0, got {batch_size}, {width}")
    # Building blocks draws their initial weights from torch's global RNG; fork it so computing
    # costs never shifts a run's model initialisation.
    with torch.random.fork_rng(devices=[]):
        return {net: _net_costs(arch, net, width, batch_size, mode) for net in NETS}


def _net_costs(arch: Architecture, net: str, width: float, batch: int, mode: str) -> BlockCosts:
    blocks = [b.to("meta").train() for b in arch.blocks(net, width)]
    labels = torch.zeros(batch, dtype=torch.long, device="meta")
    shape = (arch.z_dim,) if net == GENERATOR else arch.image_shape
    x = torch.zeros(batch, *shape, device="meta")
    fwd, bwd, out_bytes = [], [], []
    first_main_layer_seen = False
    for i, block in enumerate(blocks):
        # Block 1's input is data (noise or an image): nothing upstream needs its gradient.
        inp = x.detach().requires_grad_(i > 0)
        if mode == "true":
            with FlopCounterMode(display=False) as counter:
                out = block(inp, labels) if i == 0 else block(inp)
            f = counter.get_total_flops()
            with FlopCounterMode(display=False) as counter:
                out.backward(torch.ones_like(out))
            g = counter.get_total_flops()
        else:
            out, f, g, first_main_layer_seen = _reference_block(block, inp, labels if i == 0 else None,
                                                                first_main_layer_seen)
        fwd.append(float(f))
        bwd.append(float(g))
        out_bytes.append(float(FP32_BYTES * out.numel()))
        x = out.detach()
    return BlockCosts(np.array(fwd), np.array(bwd), np.array(out_bytes), batch, mode)


# Reference per-element (forward, backward) costs of activations.
_REF_ACTIVATIONS = {nn.ReLU: (1, 2), nn.LeakyReLU: (2, 3), nn.Tanh: (5, 3), nn.Sigmoid: (3, 2)}


def _reference_block(block: nn.Module, inp: torch.Tensor, labels, first_seen: bool):
    """Run ``block`` recording each leaf layer's output; return (out, fwd, bwd, first_seen)."""
    records: list[tuple[nn.Module, tuple[int, ...]]] = []
    hooks = [m.register_forward_hook(lambda m, _i, o: records.append((m, tuple(o.shape))))
             for m in block.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            out = block(inp, labels) if labels is not None else block(inp)
    finally:
        for h in hooks:
            h.remove()
    fwd = bwd = 0
    for module, shape in records:
        batch, per_sample = shape[0], shape[1:]
        is_main = isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))
        f, g = _reference_layer(module, per_sample, first=is_main and not first_seen)
        first_seen = first_seen or is_main
        fwd += batch * f
        bwd += batch * g
    return out, fwd, bwd, first_seen


def _reference_layer(m: nn.Module, out_shape: tuple[int, ...], first: bool) -> tuple[int, int]:
    """Per-sample (forward, backward) FLOPs of one layer under the reference hand table."""
    elements = int(np.prod(out_shape)) if out_shape else 1
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        kh, kw = m.kernel_size
        pixels = out_shape[1] * out_shape[2]
        macs = m.in_channels * m.out_channels * kh * kw * pixels  # over OUTPUT pixels, as the original
        bias = m.out_channels * pixels
        return 2 * macs + bias, (2 if first else 4) * macs + bias
    if isinstance(m, nn.Linear):
        macs = m.in_features * m.out_features
        return 2 * macs + m.out_features, (2 if first else 4) * macs + m.out_features
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)):  # GroupNorm (model.body_norm): as BatchNorm
        return 8 * elements, 11 * elements
    for kind, (f, g) in _REF_ACTIVATIONS.items():
        if isinstance(m, kind):
            return f * elements, g * elements
    if isinstance(m, nn.Embedding) or not any(True for _ in m.parameters(recurse=False)):
        return 0, 0  # lookups and parameter-free reshapes: the original counted nothing
    raise ValueError(f"reference cost mode has no formula for {type(m).__name__}")
