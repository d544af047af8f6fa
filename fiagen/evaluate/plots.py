"""Figures: ROC curves per method, and R_AUC against perturbation level (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from fiagen.evaluate.metrics import binary_metrics  # noqa: E402


def roc_plot(curves: dict[str, pd.DataFrame], path: Path, title: str) -> Path:
    """One ROC curve per entry (a table with label and score columns), with its AUC in the legend."""
    fig, ax = plt.subplots(figsize=(5.5, 5.0), dpi=120)
    for name, table in curves.items():
        labels, scores = table["label"].to_numpy(), table["score"].to_numpy()
        if len(set(labels)) < 2:
            continue
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, lw=1.5, label=f"{name} (AUC {binary_metrics(labels, scores)['auc']:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01), title=title)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def robustness_plot(table: pd.DataFrame, path: Path, title: str) -> Path:
    """R_AUC (y) against level (x), one line per perturbation, like the paper's Figure 3."""
    fig, ax = plt.subplots(figsize=(5.5, 4.0), dpi=120)
    for name, rows in table.groupby("perturbation", sort=False):
        rows = rows.sort_values("level")
        ax.plot(rows["level"], rows["r_auc"], marker="o", lw=1.5, label=name)
    ax.axhline(0.0, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="level", ylabel="R_AUC = (AUC - AUC_raw) / AUC_raw", title=title, xticks=[1, 2, 3, 4, 5])
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
