"""A snapshot of everything an object holds that training changes, and its exact restoration.

A strategy side (:class:`~huscf_mpi.strategies.ClientStrategy`, ``ServerStrategy``) is
captured attribute by attribute, so a method needs no code of its own to be checkpointed and
an attribute added later cannot be forgotten. By the value's type:

=====================================  =========================  ==============================
value                                  saved                      restored
=====================================  =========================  ==============================
``nn.Module``                          ``state_dict()`` (cloned)  in place, strict
object with ``state_dict`` and         ``state_dict()``           in place (``load_state_dict``)
``load_state_dict`` (an optimizer)
``torch.Tensor``                       a clone                    in place (``copy_``)
``torch.Generator``                    ``get_state()``            in place (``set_state``)
``numpy.random.Generator``             its bit generator's state  in place
``numpy.ndarray``, plain data (None,   a copy                     replaced
numbers, str, frozen dataclasses,
containers of these)
dict, list, tuple, namespace, an       item by item               item by item (same object)
object of this package
callable, or an attribute named in     nothing                    left as built
``skip``
=====================================  =========================  ==============================

Anything else raises ``TypeError`` naming its path (``"m.g_head"``), so a strategy holding a
foreign object learns it at its first checkpoint, not after a wrong resume. Restoring needs an
object built the same way (same config and cut vectors): only values change, never structure,
except that an attribute still None (built lazily, like centralized's pool of received data) is
built from its saved state: an object of the saved class, a generator, a container, a tensor.
"""
from __future__ import annotations

import copy
import dataclasses
import random
import types

import numpy as np
import torch
from torch import nn

# Engine references every strategy side holds; they are rebuilt at start-up, never saved.
SKIP = frozenset({"info", "t", "pace", "shard"})
_PLAIN = (type(None), bool, int, float, complex, str, bytes, np.generic, np.dtype, torch.dtype, range)


def _plain(value) -> bool:
    if isinstance(value, _PLAIN) or (dataclasses.is_dataclass(value) and value.__dataclass_params__.frozen):
        return True  # a frozen dataclass is a value (a staleness rule, a cut vector)
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return False


def _ours(value) -> bool:
    return isinstance(value, types.SimpleNamespace) or type(value).__module__.startswith("huscf_mpi.")


def capture(obj, skip=SKIP, path: str = "") -> dict:
    """The state of every attribute of ``obj`` but those named in ``skip`` (see the module's table).

    Returns ``{attribute: tagged value}``; raises ``TypeError`` naming an attribute it cannot save."""
    return {name: tagged for name, value in vars(obj).items() if name not in skip
            for tagged in [_capture(value, f"{path}{name}")] if tagged is not None}


def _capture(value, path: str):
    if isinstance(value, nn.Module):
        return "module", {k: v.detach().clone() for k, v in value.state_dict().items()}
    if isinstance(value, torch.Tensor):
        return "tensor", value.detach().clone()
    if isinstance(value, torch.Generator):
        return "torch_generator", value.get_state()
    if isinstance(value, np.random.Generator):
        return "numpy_generator", copy.deepcopy(value.bit_generator.state)
    if isinstance(value, np.ndarray):
        return "value", value.copy()
    if _plain(value):
        return "value", copy.deepcopy(value)
    if callable(getattr(value, "state_dict", None)) and callable(getattr(value, "load_state_dict", None)):
        return "stateful", value.state_dict()
    if isinstance(value, dict):
        return "dict", {k: _capture(v, f"{path}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value).__name__, [_capture(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if callable(value) and not _ours(value):
        return None  # functions, bound methods, classes: code, rebuilt at start-up
    if _ours(value):
        return "object", (type(value), capture(value, SKIP, f"{path}."))
    raise TypeError(f"cannot checkpoint {path} ({type(value).__module__}.{type(value).__qualname__}); give the "
                    "strategy a state_dict/load_state_dict for it or keep it out of the instance")


def restore(obj, state: dict, skip=SKIP, strict: bool = True) -> None:
    """Put ``state`` (from :func:`capture` of an object built the same way) back into ``obj``.

    Raises ``ValueError`` naming the first attribute whose structure differs (a model part of
    another shape, a missing entry): the checkpoint belongs to another configuration; with
    ``strict`` (an object built by its constructor, not blank) also one ``obj`` does not have:
    the checkpoint was written by another version of the strategy, whose state would otherwise
    land beside the attributes that training reads."""
    for name, tagged in state.items():
        if name in skip:
            continue
        if strict and not hasattr(obj, name):
            raise ValueError(f"checkpoint entry {name} does not fit this run: {type(obj).__name__} has no such "
                             "attribute (a checkpoint of another huscf-mpi version)")
        setattr(obj, name, _restore(getattr(obj, name, None), tagged, name))


def _restore(current, tagged, path: str):
    tag, saved = tagged
    try:
        if tag == "value":
            return saved.copy() if isinstance(saved, np.ndarray) else copy.deepcopy(saved)
        blank = current is None
        if blank:  # built lazily (e.g. a pool of data received in the first round): build it here
            current = _blank(tag, saved)
        if tag in ("module", "stateful"):
            current.load_state_dict(saved)
        elif tag == "tensor":
            with torch.no_grad():
                current.copy_(saved) if current.shape == saved.shape else _mismatch(current.shape, saved.shape)
        elif tag == "torch_generator":
            current.set_state(saved)
        elif tag == "numpy_generator":
            current.bit_generator.state = saved
        elif tag == "dict":
            for k in [k for k in current if k not in saved]:
                del current[k]
            for k, v in saved.items():
                current[k] = _restore(current.get(k), v, f"{path}[{k!r}]")
        elif tag in ("list", "tuple"):
            if len(current) != len(saved):
                _mismatch(len(current), len(saved))
            items = [_restore(c, v, f"{path}[{i}]") for i, (c, v) in enumerate(zip(current, saved))]
            if tag == "tuple":
                return type(current)(items)
            current[:] = items
        elif tag == "object":
            restore(current, saved[1], SKIP, strict=not blank)
        else:
            raise ValueError(f"unknown entry {tag!r}")
    except (AttributeError, KeyError, RuntimeError, TypeError, ValueError) as e:
        if str(e).startswith("checkpoint entry "):
            raise  # named by the innermost entry already
        raise ValueError(f"checkpoint entry {path} does not fit this run: {e}") from None
    return current


def _blank(tag: str, saved):
    """An empty value of ``tag`` to restore into, for an attribute that is still None."""
    if tag == "tensor":
        return saved.clone()
    if tag == "torch_generator":
        return torch.Generator()
    if tag == "numpy_generator":
        return np.random.Generator(getattr(np.random, saved["bit_generator"])())
    if tag in ("dict", "list", "tuple"):
        return {"dict": {}, "list": [None] * len(saved), "tuple": (None,) * len(saved)}[tag]
    if tag == "object":
        return saved[0].__new__(saved[0])
    raise ValueError(f"a {tag} cannot be built from its saved state; build it in the constructor")


def _mismatch(have, saved):
    raise ValueError(f"this run has {have}, the checkpoint {saved}")


def global_rng_state() -> dict:
    """The process-wide generators (torch's default CPU generator, NumPy's legacy global, Python's
    ``random``): nothing in the package draws from them, but a library might."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_global_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
