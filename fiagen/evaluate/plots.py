"""Figures: ROC curves per method, R_AUC against perturbation level, GradCAM tiles (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from fiagen.evaluate.metrics import binary_metrics  # noqa: E402


def roc_plot(curves: dict[str, pd.DataFrame], path: Path, title: str) -> Path | None:
    """One ROC curve per entry (a table with label and score columns), with its AUC in the legend; None
    (and no file: an old one is removed) when no entry has both reals and fakes."""
    drawable = {name: t for name, t in curves.items() if t["label"].nunique() == 2}
    if not drawable:
        path.unlink(missing_ok=True)
        return None
    fig, ax = plt.subplots(figsize=(5.5, 5.0), dpi=120)
    for name, table in drawable.items():
        labels, scores = table["label"].to_numpy(), table["score"].to_numpy()
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


def cam_plot(crop: np.ndarray, cam: np.ndarray, title: str, path: Path, alpha: float = 0.5) -> Path:
    """A GradCAM tile that stands alone: the crop and the crop under the map (jet: 0 = no weight, 1 = the
    most), each drawn at the crop's size or 256 px if larger, `title` (file, frame, P(fake)) above and a
    colour bar beside them."""
    side, pad, top, bar = max(crop.shape[0], 256), 8, 52, 60
    width, height = 2 * side + 3 * pad + bar, side + top + pad
    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    axes = [fig.add_axes(((pad + i * (side + pad)) / width, pad / height, side / width, side / height))
            for i in range(2)]
    axes[0].imshow(crop, interpolation="bilinear")
    axes[0].set_title("face crop (as scored)", fontsize=8, pad=3)
    axes[1].imshow(crop, interpolation="bilinear")
    axes[1].imshow(cam, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0, interpolation="bilinear")
    axes[1].set_title("GradCAM of the fake logit", fontsize=8, pad=3)
    for ax in axes:
        ax.set_axis_off()
    cax = fig.add_axes(((3 * pad + 2 * side) / width, pad / height, 12 / width, side / height))
    colorbar = fig.colorbar(plt.cm.ScalarMappable(norm=plt.Normalize(0.0, 1.0), cmap="jet"), cax=cax)
    colorbar.set_label("relative weight", fontsize=7)
    colorbar.ax.tick_params(labelsize=6)
    fig.text(0.5, 1 - 14 / height, title, ha="center", va="center", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
