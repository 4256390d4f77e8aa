"""Evaluation metrics of SPEC §6.

Generation score (Inception-score formula with a per-domain :class:`DomainClassifier`),
classification on synthetic data (:class:`SyntheticCNN`, macro metrics in %), and the
domain-classifier FID (Fréchet distance of the domain classifier's 128-d penultimate features;
not Inception FID). Trained domain classifiers are cached on disk by
:func:`load_or_train_domain_classifier`. The optional Inception FID (:func:`inception_fid`,
"FID (Inception)") needs a local weights file, loaded by :func:`load_inception`.
"""
from .cache import domain_classifier_cache_key, load_or_train_domain_classifier
from .classifiers import DomainClassifier, SyntheticCNN
from .inception import FIDInceptionV3, InceptionWeightsError, inception_features, inception_fid, load_inception
from .scores import classification_metrics, feature_statistics, frechet_distance, generation_score
from .synthetic import fid_against_real, synthetic_classification
from .training import (
    accuracy,
    extract_features,
    predict_logits,
    predict_proba,
    to_labels,
    to_model_input,
    train_classifier,
)

__all__ = [
    "DomainClassifier",
    "FIDInceptionV3",
    "InceptionWeightsError",
    "SyntheticCNN",
    "accuracy",
    "classification_metrics",
    "domain_classifier_cache_key",
    "extract_features",
    "feature_statistics",
    "fid_against_real",
    "frechet_distance",
    "generation_score",
    "inception_features",
    "inception_fid",
    "load_inception",
    "load_or_train_domain_classifier",
    "predict_logits",
    "predict_proba",
    "synthetic_classification",
    "to_labels",
    "to_model_input",
    "train_classifier",
]
