"""Detection metrics from scikit-learn: AUC, AP, EER, accuracy at 0.5 (label 1 = fake, score = P(fake))."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score, roc_curve

METRICS = ("auc", "ap", "eer", "acc")


def eer(labels: np.ndarray, scores: np.ndarray) -> float:
    """Equal error rate: where the false-positive rate meets the false-negative rate on the ROC curve,
    interpolated linearly between the two ROC points that bracket the crossing."""
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1.0 - tpr
    diff = fnr - fpr  # decreasing from 1 to -1 along the curve
    i = int(np.argmax(diff <= 0))
    if i == 0 or diff[i] == 0:
        return float(fpr[i])
    t = diff[i - 1] / (diff[i - 1] - diff[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def binary_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUC, AP, EER and ACC@0.5; NaN for the ranking metrics when only one class is present."""
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    out = dict.fromkeys(METRICS, float("nan"))
    if len(labels) == 0:
        return out
    out["acc"] = float(accuracy_score(labels, scores >= 0.5))
    if len(np.unique(labels)) == 2:
        out["auc"] = float(roc_auc_score(labels, scores))
        out["ap"] = float(average_precision_score(labels, scores))
        out["eer"] = eer(labels, scores)
    return out
