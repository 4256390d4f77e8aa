"""Downstream evaluations of generated samples (SPEC §6).

* :func:`synthetic_classification` -- "classification on synthetic data": train a
  :class:`SyntheticCNN` on generated samples only, test it on the real test set.
* :func:`fid_against_real` -- the domain-classifier FID: Fréchet distance between the 128-d
  penultimate features of a :class:`DomainClassifier` on real and on generated images.
"""
from __future__ import annotations

from .classifiers import DomainClassifier, SyntheticCNN
from .scores import classification_metrics, feature_statistics, frechet_distance
from .training import extract_features, predict_logits, to_labels, train_classifier

__all__ = ["synthetic_classification", "fid_against_real"]


def synthetic_classification(
    gen_images,
    gen_labels,
    test_images,
    test_labels,
    epochs: int = 15,
    batch_size: int = 64,
    lr: float = 1e-3,
    *,
    seed: int,
    n_classes: int = 10,
) -> dict[str, float]:
    """Train a :class:`SyntheticCNN` on generated data and score it on real test data.

    Parameters
    ----------
    gen_images : numpy.ndarray or torch.Tensor
        float32 (N, C, H, W) in [-1, 1] (uint8 (N, H, W) / (N, C, H, W) also accepted); SPEC
        uses 30,000 samples with uniform labels. The CNN takes the test images' shape.
    gen_labels : array-like
        int64 (N,), the labels the samples were conditioned on.
    test_images, test_labels :
        Real test set, same formats.
    epochs : int, default=15
    batch_size : int, default=64
    lr : float, default=1e-3
        Adam training recipe of SPEC §6.
    seed : int, keyword-only
        Seeds both the CNN's initial weights and the batch order (global torch RNG untouched).
    n_classes : int, default=10

    Returns
    -------
    dict
        :func:`classification_metrics` of the CNN's predictions on the real test set:
        ``accuracy``, ``precision``, ``recall``, ``f1``, ``fpr`` (macro, in %).
    """
    from .cache import image_shape_of

    model = SyntheticCNN(n_classes, seed=seed, image_shape=image_shape_of(test_images))
    train_classifier(model, gen_images, gen_labels, epochs, batch_size, lr, seed=seed)
    y_pred = predict_logits(model, test_images).argmax(dim=1).numpy()
    return classification_metrics(to_labels(test_labels).numpy(), y_pred, n_classes)


def fid_against_real(classifier: DomainClassifier, real_images, fake_images, batch_size: int = 1000) -> float:
    """Domain-classifier FID between real and generated images (SPEC §6).

    Not the Inception FID: features are the 128-d penultimate activations of the domain's
    :class:`DomainClassifier`, so values are only comparable between runs that use the same
    classifier weights; label tables must call it "domain-classifier FID".

    Parameters
    ----------
    classifier : DomainClassifier
        Trained classifier of the domain (e.g. from :func:`load_or_train_domain_classifier`).
    real_images, fake_images :
        float32 (N, C, H, W) in [-1, 1] or uint8 (N, H, W) / (N, C, H, W); at least 2 each. Covariances of
        128-d features are only full-rank with more than 128 samples; thousands are advisable.
    batch_size : int, default=1000
        Inference batch size (memory only).

    Returns
    -------
    float
        Squared Fréchet distance between the two feature Gaussians (0 for identical sets).
    """
    mu_r, sigma_r = feature_statistics(extract_features(classifier, real_images, batch_size))
    mu_f, sigma_f = feature_statistics(extract_features(classifier, fake_images, batch_size))
    return frechet_distance(mu_r, sigma_r, mu_f, sigma_f)
