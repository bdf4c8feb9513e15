"""Figures written atomically as PNG (matplotlib, no display needed)."""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save_figure(fig, path):
    """Write ``fig`` to ``path`` (PNG) through a temporary file, then close it."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def roc_panel(ax, curves, title, log_scale=False):
    """Draw ROC curves {label: (fpr, tpr)} on ``ax``; log-log axes when ``log_scale``.

    On log axes the lower limit is set by the smallest positive FPR / TPR present, so
    the low-FPR regime that LiRA is about stays visible.
    """
    for label, (fpr, tpr) in curves.items():
        ax.plot(fpr, tpr, label=label, lw=1.5)
    if log_scale:
        positives = [v for fpr, tpr in curves.values() for v in list(fpr) + list(tpr) if v > 0]
        low = min(positives + [1e-3])
        ax.plot([low, 1], [low, 1], "k--", lw=0.8, label="chance")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(low, 1)
        ax.set_ylim(low, 1.05)
    else:
        ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")


def roc_figure(panels, path, suptitle="", log_scale=False):
    """One PNG with a ROC panel per entry of ``panels`` = [(title, {label: (fpr, tpr)}), ...]."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.6), squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels):
        roc_panel(ax, curves, title, log_scale)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    save_figure(fig, path)
    return path
