"""Figures people look at instead of reading numbers: confusion matrices, curves."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Lay out, write as PNG (creating the folder) and close a matplotlib figure."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_confusion_matrix(cm: torch.Tensor | np.ndarray, classes: Sequence[str], path: str | Path,
                          title: str = "confusion matrix (rows: true, normalized)") -> Path:
    """Row-normalized confusion matrix with counts; saved as PNG."""
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    k = len(classes)
    size = max(5.0, 0.5 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{rows[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if rows[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return save_figure(fig, path)


def plot_curves(series: dict[str, tuple[Sequence[float], Sequence[float]]], path: str | Path,
                xlabel: str, ylabel: str, title: str = "") -> Path:
    """Line plot of named (x, y) series; saved as PNG."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name, marker="o" if len(x) < 30 else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_training_curves(rows: Sequence[dict], path: str | Path, title: str = "") -> Path | None:
    """Training loss (with a moving average), learning rate and evaluation metrics against the step.

    rows: a run's train_log.jsonl (pixelwise.engine.train): step rows {step, loss, lr} and evaluation
    rows {eval: true, step, test_*}. Returns None when there is no step row to draw.
    """
    steps = [r for r in rows if not r.get("eval") and "loss" in r]
    if not steps:
        return None
    evals = [r for r in rows if r.get("eval")]
    metrics = sorted({k for r in evals for k in r if k.startswith("test_") and k not in ("test_loss", "test_n")
                      and isinstance(r[k], (int, float))})
    # The headline numbers (miou, top1, ap, ...), not every score's copy of them (max_softmax_ap, ...).
    metrics = [k for k in metrics if "_" not in k[5:]] or metrics[:4]
    panels = 2 + bool(metrics)
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.6))
    x = np.array([r["step"] for r in steps])
    loss = np.array([r["loss"] for r in steps], dtype=np.float64)
    window = max(1, len(loss) // 50)
    axes[0].plot(x, loss, alpha=0.35, lw=0.8, label="loss")
    if window > 1:
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        axes[0].plot(x[window - 1:], smooth, lw=1.5, label=f"mean of {window}")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("training loss")
    axes[0].legend()
    axes[1].plot(x, [r["lr"] for r in steps])
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("learning rate (group 0)")
    if metrics:
        for k in metrics:
            axes[2].plot([r["step"] for r in evals], [r.get(k, np.nan) for r in evals], marker="o", label=k[5:])
        axes[2].set_xlabel("step")
        axes[2].set_ylabel("test metric")
        axes[2].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
