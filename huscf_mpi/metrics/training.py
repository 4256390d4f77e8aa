"""Training and batched inference for the evaluation classifiers (SPEC §6).

All entry points accept images either as uint8 pixels of shape (N, H, W) or (N, C, H, W) --
scaled here to [-1, 1] with ``(x / 255) * 2 - 1``, the same mapping the GAN's data path uses --
or as float images of shape (N, C, H, W) already in [-1, 1] (NumPy arrays or torch tensors).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data.loading import to_unit_range

__all__ = [
    "to_model_input",
    "to_labels",
    "train_classifier",
    "predict_logits",
    "predict_proba",
    "extract_features",
    "accuracy",
]


def _as_tensor(array) -> torch.Tensor:
    """Tensor view of ``array``; read-only NumPy arrays (e.g. ``np.frombuffer``) are copied
    because torch cannot wrap them without a warning about undefined behaviour on writes."""
    if isinstance(array, torch.Tensor):
        return array
    a = np.asarray(array)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def to_model_input(images) -> torch.Tensor:
    """Convert images to the float32 (N, C, H, W) tensor in [-1, 1] the classifiers take.

    Parameters
    ----------
    images : array-like or torch.Tensor
        uint8 of shape (N, H, W) or (N, C, H, W), pixel values 0..255, scaled by
        ``(x / 255) * 2 - 1``; or floating point of shape (N, C, H, W) or (N, H, W) already in
        [-1, 1], passed through (cast to float32).

    Returns
    -------
    torch.Tensor
        float32, shape (N, C, H, W) (C = 1 for 3-D input), on the CPU (or the input tensor's device).

    Raises
    ------
    ValueError
        If the array is not 3-D or 4-D, or has a dtype other than uint8/float.
    """
    x = _as_tensor(images)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (N, H, W) or (N, C, H, W), got {tuple(x.shape)}")
    if x.dtype == torch.uint8:  # the GAN's own data scaling, so classifiers see what G is trained on
        return torch.from_numpy(to_unit_range(x.cpu().numpy()))
    if not x.is_floating_point():
        raise ValueError(f"expected uint8 or floating-point images, got dtype {x.dtype}")
    return x.to(torch.float32)


def to_labels(labels) -> torch.Tensor:
    """Convert labels to an int64 tensor of shape (N,).

    Raises
    ------
    ValueError
        If ``labels`` is not 1-D or not of an integer dtype.
    """
    y = _as_tensor(labels)
    if y.ndim != 1 or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"expected 1-D integer labels, got shape {tuple(y.shape)} dtype {y.dtype}")
    return y.to(torch.int64)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def train_classifier(
    model: nn.Module,
    images,
    labels,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    *,
    seed: int,
) -> nn.Module:
    """Train ``model`` with Adam and cross-entropy on (images, labels), in place.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier mapping (B, C, H, W) float32 to (B, K) logits.
    images : array-like or torch.Tensor
        float32 (N, C, H, W) in [-1, 1], or uint8 (N, H, W) / (N, C, H, W) (see :func:`to_model_input`).
    labels : array-like or torch.Tensor
        int64 (N,), values in 0..K-1.
    epochs : int
        Full passes over the data (>= 0).
    batch_size : int, default=64
        Mini-batch size; the last, smaller batch of an epoch is kept.
    lr : float, default=1e-3
        Adam learning rate.
    seed : int, keyword-only
        Seeds a private ``torch.Generator`` that draws each epoch's permutation; the global torch
        RNG is neither read nor advanced, so training never shifts other random streams.

    Returns
    -------
    torch.nn.Module
        ``model`` itself, trained, left in eval mode.

    Raises
    ------
    ValueError
        If images and labels differ in length, the set is empty, or epochs/batch_size are invalid.
    """
    x = to_model_input(images)
    y = to_labels(labels)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    if len(x) == 0:
        raise ValueError("cannot train on an empty set")
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"need epochs >= 0 and batch_size >= 1, got {epochs}, {batch_size}")

    device = _device(model)
    generator = torch.Generator().manual_seed(int(seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(int(epochs)):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x[idx].to(device), y[idx].to(device)
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(xb), yb).backward()
            optimizer.step()
    model.eval()
    return model


@torch.no_grad()
def _batched(fn, model: nn.Module, images, batch_size: int) -> torch.Tensor:
    """Apply ``fn(batch)`` over ``images`` in eval mode, restoring the model's previous mode."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    x = to_model_input(images)
    device = _device(model)
    was_training = model.training
    model.eval()
    try:
        out = [fn(x[s:s + batch_size].to(device)).cpu() for s in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    if not out:
        raise ValueError("no images given")
    return torch.cat(out)


def predict_logits(model: nn.Module, images, batch_size: int = 1000) -> torch.Tensor:
    """Logits of ``model`` on ``images``, computed in eval mode under ``torch.no_grad``.

    Parameters
    ----------
    model : torch.nn.Module
    images : array-like or torch.Tensor
        float32 (N, C, H, W) in [-1, 1], or uint8 (N, H, W) / (N, C, H, W).
    batch_size : int, default=1000
        Inference batch size (memory only; results do not depend on it).

    Returns
    -------
    torch.Tensor
        float32, shape (N, K), on the CPU.
    """
    return _batched(model, model, images, batch_size)


def predict_proba(model: nn.Module, images, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities p(y|x) = softmax(logits), float64 NumPy array of shape (N, K).

    This is the input of :func:`huscf_mpi.metrics.generation_score` (SPEC §6).
    """
    return torch.softmax(predict_logits(model, images, batch_size).double(), dim=1).numpy()


def extract_features(model: nn.Module, images, batch_size: int = 1000) -> np.ndarray:
    """Features ``model.features(x)`` as a float64 NumPy array of shape (N, F).

    For a :class:`~huscf_mpi.metrics.DomainClassifier` these are the 128-d penultimate
    activations used by the domain-classifier FID (SPEC §6).
    """
    return _batched(model.features, model, images, batch_size).double().numpy()


def accuracy(model: nn.Module, images, labels, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` on (images, labels), in percent (0..100).

    Raises
    ------
    ValueError
        If images and labels differ in length.
    """
    y = to_labels(labels)
    logits = predict_logits(model, images, batch_size)
    if len(logits) != len(y):
        raise ValueError(f"{len(logits)} images but {len(y)} labels")
    return float((logits.argmax(dim=1) == y).double().mean().item() * 100.0)
