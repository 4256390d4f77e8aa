"""Staleness functions of FedAsync: how much a late contribution counts (issue 10, point 1).

Source: C. Xie, S. Koyejo, I. Gupta, "Asynchronous Federated Optimization", arXiv:1903.03934
(2019; OPT 2020), section "Staleness": the server mixes an update computed on the model of
step ``τ`` into the model of step ``t`` with weight ``α_t = α · s(t − τ)``, where ``s`` is one of

- constant:   ``s(t − τ) = 1``;
- polynomial: ``s_a(t − τ) = (t − τ + 1)^(−a)``, ``a > 0``;
- hinge:      ``s_{a,b}(t − τ) = 1`` if ``t − τ ≤ b``, else ``1 / (a·(t − τ − b) + 1)``,
  ``a > 0, b ≥ 0``.

Every function is 1 at staleness 0 and non-increasing in the staleness. (The formulas were
checked against the FedAsync implementation of the Plato framework, which defines the same
three functions.)

Here the staleness ``t − τ`` is an integer ≥ 0 (rounds, or server steps, between the model a
client started from and the one its contribution joins). The functions take arrays of any
shape and return float64 weights of the same shape; a scalar gives a 0-d array.

In a config the function is written ``constant``, ``polynomial(a)`` or ``hinge(a, b)``;
:func:`parse_staleness` turns that text into a :class:`StalenessFunction` (callable, and
``str()`` gives the canonical text back); the config's field type is
:data:`huscf_mpi.config.StalenessSpec`. No pydantic here: client ranks import this module.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

NAMES = ("constant", "polynomial", "hinge")
_FORM = "constant, polynomial(a) or hinge(a, b) with a > 0 and b >= 0"


def _staleness(staleness) -> np.ndarray:
    """``staleness`` as an int64 array; ``TypeError`` unless integer, ``ValueError`` if negative."""
    s = np.asarray(staleness)
    if s.size == 0:
        return s.astype(np.int64)
    if s.dtype == np.bool_ or not np.issubdtype(s.dtype, np.integer):
        raise TypeError(f"staleness must be integers, got dtype {s.dtype}")
    if np.any(s < 0):
        raise ValueError(f"staleness must be >= 0, got minimum {int(s.min())}")
    return s.astype(np.int64, copy=False)


def _check_a(a: float) -> float:
    a = float(a)
    if not (math.isfinite(a) and a > 0):
        raise ValueError(f"parameter a must be finite and > 0, got {a}")
    return a


def _check_b(b: float) -> float:
    b = float(b)
    if not (math.isfinite(b) and b >= 0):
        raise ValueError(f"parameter b must be finite and >= 0, got {b}")
    return b


def constant(staleness) -> np.ndarray:
    """``s(t − τ) = 1`` (FedAsync's constant function): every contribution counts fully.

    Parameters
    ----------
    staleness : array_like of int, any shape, every element >= 0.

    Returns
    -------
    ndarray, float64, the shape of ``staleness``, all ones.

    Raises ``TypeError`` for non-integer input, ``ValueError`` for a negative staleness.
    """
    return np.ones(_staleness(staleness).shape, dtype=np.float64)


def polynomial(staleness, a: float) -> np.ndarray:
    """``s_a(t − τ) = (t − τ + 1)^(−a)`` (FedAsync's polynomial function).

    Parameters
    ----------
    staleness : array_like of int, any shape, every element >= 0.
    a : the decay exponent, finite and > 0 (``a = 0.5``: staleness 3 weighs 1/2).

    Returns
    -------
    ndarray, float64, the shape of ``staleness``; 1 at staleness 0, in (0, 1] everywhere.

    Raises ``TypeError`` for non-integer staleness, ``ValueError`` for a negative staleness or a bad ``a``.
    """
    s, a = _staleness(staleness), _check_a(a)
    return np.power(s.astype(np.float64) + 1.0, -a)


def hinge(staleness, a: float, b: float) -> np.ndarray:
    """``s_{a,b}(t − τ) = 1`` if ``t − τ ≤ b`` else ``1 / (a·(t − τ − b) + 1)`` (FedAsync's hinge function).

    Parameters
    ----------
    staleness : array_like of int, any shape, every element >= 0.
    a : the decay slope beyond the hinge, finite and > 0.
    b : the hinge, finite and >= 0: contributions at most ``b`` steps stale count fully.

    Returns
    -------
    ndarray, float64, the shape of ``staleness``; in (0, 1].

    Raises ``TypeError`` for non-integer staleness, ``ValueError`` for a negative staleness or a
    bad ``a``/``b``.
    """
    s, a, b = _staleness(staleness).astype(np.float64), _check_a(a), _check_b(b)
    return np.where(s <= b, 1.0, 1.0 / (a * np.maximum(s - b, 0.0) + 1.0))


def _checked(name: str, params) -> tuple[float, ...]:
    """``params`` as floats, checked for ``name``; ``ValueError`` (the reason alone) otherwise."""
    expected = {"constant": 0, "polynomial": 1, "hinge": 2}.get(name)
    if expected is None:
        raise ValueError(f"unknown name {name!r}")
    if len(params) != expected:
        raise ValueError(f"{name} takes {expected} parameter(s), got {len(params)}")
    return tuple(check(p) for check, p in zip((_check_a, _check_b), params))


@dataclass(frozen=True)
class StalenessFunction:
    """One of FedAsync's staleness functions with its parameters; call it on staleness arrays.

    Attributes
    ----------
    name : ``"constant"``, ``"polynomial"`` or ``"hinge"``.
    params : ``()``, ``(a,)`` or ``(a, b)``, floats.
    """

    name: str
    params: tuple[float, ...] = ()

    def __post_init__(self):
        try:
            params = _checked(self.name, self.params)
        except ValueError as e:
            raise ValueError(f"staleness function {self.name!r}: {e}; expected {_FORM}") from None
        object.__setattr__(self, "params", params)

    def __call__(self, staleness) -> np.ndarray:
        """Weights (float64, the shape of ``staleness``) of the integer staleness values ``staleness``."""
        return {"constant": constant, "polynomial": polynomial, "hinge": hinge}[self.name](staleness, *self.params)

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return f"{self.name}({', '.join(format(p, 'g') for p in self.params)})"


_TEXT = re.compile(r"^\s*([A-Za-z_]+)\s*(?:\((.*)\))?\s*$")


def parse_staleness(text) -> StalenessFunction:
    """The staleness function written ``constant``, ``polynomial(a)`` or ``hinge(a, b)``.

    Whitespace is free and names are case-insensitive; parameters are decimal numbers
    (``polynomial(0.5)``, ``hinge(10, 4)``). A :class:`StalenessFunction` is returned as is,
    so the function can serve as a pydantic ``BeforeValidator``.

    Raises ``ValueError`` with one line naming the text and the accepted forms.
    """
    if isinstance(text, StalenessFunction):
        return text
    if not isinstance(text, str):
        raise ValueError(f"staleness function must be text ({_FORM}), got {type(text).__name__} {text!r}")
    m = _TEXT.match(text)
    if m is None:
        raise ValueError(f"staleness function {text!r}: expected {_FORM}")
    name, args = m.group(1).lower(), m.group(2)
    params: tuple[float, ...] = ()
    if args is not None and args.strip():
        try:
            params = tuple(float(x) for x in args.split(","))
        except ValueError:
            raise ValueError(f"staleness function {text!r}: parameters must be numbers; expected {_FORM}") from None
    try:
        params = _checked(name, params)
    except ValueError as e:
        raise ValueError(f"staleness function {text!r}: {e}; expected {_FORM}") from None
    return StalenessFunction(name, params)

