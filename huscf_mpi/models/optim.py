"""Adam for the split models, without ``torch.optim``.

Why not ``torch.optim.Adam``: constructing any ``torch.optim`` optimizer imports
``torch._dynamo`` (with SymPy, about 800 modules), which costs every rank about 68 MiB of
private memory (torch 2.13, measured with ``/proc/self/smaps_rollup``), 6.8 GiB across a
100-client node (issue 7). This class performs the same arithmetic as torch's default CPU
path (``_single_tensor_adam``, no AMSGrad, no weight decay), operation for operation, so its
parameters are bit-identical to ``torch.optim.Adam`` after any number of steps (checked in
``tests/test_models.py``).

Update (Kingma & Ba 2015, as torch implements it), for step ``t`` = 1, 2, ...::

    m = lerp(m, g, 1 - b1)               # m + (1 - b1) (g - m)
    v = v * b2 + (1 - b2) g²
    p -= lr / (1 - b1**t) * m / (sqrt(v) / sqrt(1 - b2**t) + eps)
"""
from __future__ import annotations

from typing import Iterable

import torch


class Adam:
    """Adam over a fixed list of float32 parameters.

    Parameters
    ----------
    params : iterable of Tensor
        Leaf tensors with ``requires_grad``; a parameter whose ``.grad`` is None at
        :meth:`step` is skipped (as in torch).
    lr : float, > 0
    betas : (float, float), each in [0, 1)
    eps : float, default 1e-8

    Raises
    ------
    ValueError
        A hyper-parameter out of range.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        if not lr > 0 or not all(0.0 <= b < 1.0 for b in betas) or not eps >= 0:
            raise ValueError(f"Adam needs lr > 0, betas in [0, 1) and eps >= 0, got lr={lr}, betas={betas}, eps={eps}")
        self.params = list(params)
        self.lr, (self.beta1, self.beta2), self.eps = float(lr), (float(betas[0]), float(betas[1])), float(eps)
        self.state: dict[int, tuple[int, torch.Tensor, torch.Tensor]] = {}  # index -> (step, m, v)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient (drop it, or fill it with zeros)."""
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.zero_()

    def state_dict(self) -> dict:
        """The moments and step counts, ``{"state": {index: (step, m, v)}}`` (tensors cloned), for a
        checkpoint; the parameters themselves belong to their modules."""
        return {"state": {i: (t, m.clone(), v.clone()) for i, (t, m, v) in self.state.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (``ValueError`` if a moment's shape differs)."""
        for i, (t, m, v) in state["state"].items():
            if not 0 <= i < len(self.params) or m.shape != self.params[i].shape or v.shape != m.shape:
                raise ValueError(f"Adam state of parameter {i} does not fit this optimizer's parameters")
        self.state = {int(i): (int(t), m.clone(), v.clone()) for i, (t, m, v) in state["state"].items()}

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        b1, b2 = self.beta1, self.beta2
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            t, m, v = self.state.get(i) or (0, torch.zeros_like(p), torch.zeros_like(p))
            t += 1
            g = p.grad
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            tf = float(t)  # torch reads its step counter back as a Python float
            step_size = self.lr / (1 - b1 ** tf)
            denom = (v.sqrt() / (1 - b2 ** tf) ** 0.5).add_(self.eps)
            p.addcdiv_(m, denom, value=-step_size)
            self.state[i] = (t, m, v)


def backward_from(tensors: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
    """Backpropagate upstream gradients ``grads`` into ``tensors`` (a client's smashed data).

    The same gradients as ``torch.autograd.backward(tensors, grads)``, which, given explicit
    gradient tensors, imports ``torch.fx.experimental.symbolic_shapes`` and with it SymPy
    (about 55 MiB private per rank, torch 2.13) just to compare shapes. Here the vector-Jacobian
    product is the gradient of the scalar ``sum_i <tensors[i], grads[i]>``; the gradient that
    reaches ``tensors[i]`` is ``1.0 * grads[i]``, exactly ``grads[i]``.

    Raises ``ValueError`` if a gradient's shape differs from its tensor's.
    """
    for t, g in zip(tensors, grads, strict=True):
        if t.shape != g.shape:
            raise ValueError(f"gradient of shape {tuple(g.shape)} for a tensor of shape {tuple(t.shape)}")
    sum((t * g).sum() for t, g in zip(tensors, grads)).backward()
