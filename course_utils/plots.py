"""Plots: small matrices drawn as annotated heatmaps, the way notebook 01 shows every step."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch


def show_matrix(m, title: str = "", rows=None, cols=None, ax=None, fmt: str = ".2f", cmap: str = "viridis",
                annotate: bool | None = None):
    """Heatmap of a 2-D tensor/array with each value written in its cell (for up to ~12x12).

    Taught in: notebook 01, "Embeddings: one learned vector per word".
    """
    a = m.detach().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m)
    if a.ndim != 2:
        raise ValueError(f"show_matrix needs a 2-D matrix; got shape {a.shape}. Index or reshape it first.")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.75 * a.shape[1] + 2, 0.5 * a.shape[0] + 1.2))
    shown = np.where(np.isfinite(a), a, np.nan)
    im = ax.imshow(shown, cmap=cmap, aspect="auto")
    annotate = a.size <= 150 if annotate is None else annotate
    if annotate:
        finite = shown[np.isfinite(shown)]
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0
        for (i, j), v in np.ndenumerate(a):
            text = ("-∞" if v < 0 else "∞") if np.isinf(v) else format(v, fmt)
            dark = np.isfinite(v) and v < mid
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks(range(a.shape[1]), cols if cols is not None else range(a.shape[1]),
                  rotation=45 if cols is not None else 0, ha="right" if cols is not None else "center")
    ax.set_yticks(range(a.shape[0]), rows if rows is not None else range(a.shape[0]))
    ax.set_title(f"{title}  {tuple(a.shape)}" if title else str(tuple(a.shape)), fontsize=10)
    plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax
