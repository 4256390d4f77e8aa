"""Packing the blocks a party hosts into one flat float32 buffer for federation (SPEC §3).

The layout of a party's buffer is a pure function of the architecture, width and cut, so the
server and each client derive the same layout independently and only raw values travel.
A *state* is ``{net: {block: {name: np.ndarray}}}``, parameters and BatchNorm buffers alike.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from .architecture import NETS, Architecture, get_architecture
from .cuts import CutVector
from .split import block_state, load_block_state

State = dict[str, dict[int, dict[str, np.ndarray]]]
Layout = list[tuple[str, int, str, tuple[int, ...]]]


def client_blocks(arch: Architecture, cut: CutVector) -> dict[str, list[int]]:
    """Blocks a client with ``cut`` hosts: its head ``1..head`` and tail ``tail..L`` per net."""
    out = {}
    for net in NETS:
        c, n = cut.net(net), arch.n_blocks(net)
        out[net] = list(range(1, c.head + 1)) + list(range(c.tail, n + 1))
    return out


@lru_cache(maxsize=None)
def _entries(arch_key: tuple, width: float) -> dict[tuple[str, int], tuple[tuple[str, tuple[int, ...], np.dtype], ...]]:
    """(name, shape, dtype) of every state entry per (net, block); built once per process.

    ``arch_key`` is :attr:`Architecture.key` (family, image shape, classes)."""
    arch = get_architecture(*arch_key)
    return {(net, b): tuple((k, tuple(v.shape), torch.empty((), dtype=v.dtype).numpy().dtype)
                            for k, v in m.state_dict().items())
            for net in NETS for b, m in enumerate(arch.blocks(net, width), start=1)}


def layout(arch: Architecture, width: float, blocks: Mapping[str, Iterable[int]]) -> Layout:
    """``[(net, block, name, shape), ...]`` in buffer order for the given hosted blocks."""
    entries = _entries(arch.key, width)
    return [(net, b, name, shape) for net in NETS for b in sorted(blocks.get(net, ()))
            for name, shape, _ in entries[net, b]]


def layout_size(lay: Layout) -> int:
    """Number of float32 elements of a buffer with layout ``lay``."""
    return int(sum(np.prod(shape, dtype=np.int64) for *_, shape in lay))


def state_of(modules: Mapping[str, Iterable[nn.Module]]) -> State:
    """The per-block state of a party's modules (Segments or ServerBodies) per net."""
    out: State = {}
    for net, mods in modules.items():
        blocks = out.setdefault(net, {})
        for m in mods:
            for b, params in block_state(m).items():
                blocks[b] = {k: v.detach().numpy().copy() for k, v in params.items()}
    return out


def load_state(modules: Mapping[str, Iterable[nn.Module]], state: State) -> None:
    """Copy ``state`` into the blocks each module hosts, in place."""
    for net, mods in modules.items():
        for m in mods:
            load_block_state(m, {b: {k: torch.from_numpy(np.asarray(v)) for k, v in p.items()}
                                 for b, p in state.get(net, {}).items()}, blocks=m.indices)


def flatten(state: State, lay: Layout, out: np.ndarray | None = None) -> np.ndarray:
    """Pack ``state`` into a float32 vector in ``lay`` order (integer buffers become floats)."""
    out = np.empty(layout_size(lay), np.float32) if out is None else out
    i = 0
    for net, b, name, shape in lay:
        n = int(np.prod(shape, dtype=np.int64))
        out[i:i + n] = np.asarray(state[net][b][name], dtype=np.float32).ravel()
        i += n
    return out


def unflatten(flat: np.ndarray, lay: Layout, dtypes: Mapping[tuple[str, int, str], np.dtype] | None = None) -> State:
    """Inverse of :func:`flatten`; ``dtypes`` restores non-float32 entries (e.g. int64 counters)."""
    state: State = {}
    i = 0
    for net, b, name, shape in lay:
        n = int(np.prod(shape, dtype=np.int64))
        value = flat[i:i + n].reshape(shape)
        dtype = (dtypes or {}).get((net, b, name), np.float32)
        state.setdefault(net, {}).setdefault(b, {})[name] = np.rint(value).astype(dtype) if np.dtype(dtype).kind in "iu" else value.astype(dtype)
        i += n
    return state


def dtypes_of(arch: Architecture, width: float) -> dict[tuple[str, int, str], np.dtype]:
    """dtype of every state entry of the full networks, keyed ``(net, block, name)``."""
    return {(net, b, name): dtype for (net, b), entries in _entries(arch.key, width).items()
            for name, _, dtype in entries}
