"""Spatial heatmaps from the decomposition (seed 000's "critical line"), and overlays drawn with matplotlib.

textspan_heatmap: sum the decomposition's per-token contributions over the chosen layers and heads, drop the
CLS source, take the dot product with each (unit) text embedding, optionally subtract the mean over prompts
(the *relative* map), and upsample from the model's grid (7x7 for ViT-B/32, 14x14 for B/16, 16x16 for L/14,
8x8 for ToyCLIP) to the image.
"""
from __future__ import annotations

import numpy as np
import torch

from .decompose import token_maps


def textspan_heatmap(model, image: torch.Tensor, text_embeddings: torch.Tensor, layers=None, heads=None,
                     relative: bool = True) -> torch.Tensor:
    """image [3, R, R] (preprocessed), text_embeddings [P, d] -> [P, R, R]."""
    visual = getattr(model, "visual", model)
    n_layers, n_heads = len(visual.transformer.resblocks), visual.transformer.resblocks[0].attn.num_heads
    for name, chosen, n in (("layer", layers, n_layers), ("head", heads, n_heads)):
        bad = [i for i in ([chosen] if isinstance(chosen, int) else chosen or []) if not -n <= i < n]
        if bad:
            raise IndexError(f"textspan_heatmap: {name} {bad[0]} doesn't exist; this model has {n} {name}s (0..{n - 1}).")
    if text_embeddings.ndim != 2 or len(text_embeddings) == 0:
        raise ValueError(f"textspan_heatmap: text_embeddings must be [P, d] with P >= 1; got {tuple(text_embeddings.shape)}.")
    if image.ndim != 3:
        raise ValueError(f"textspan_heatmap: one image [3, R, R] please; got {tuple(image.shape)}.")
    maps = token_maps(model, image[None], text_embeddings, layers, heads)[0]  # [P, R, R]
    return maps - maps.mean(dim=0, keepdim=True) if relative else maps


def overlay(image, heatmap, cmap: str = "jet", alpha: float = 0.5) -> np.ndarray:
    """Blend a heatmap [H, W] (min-max normalised) over an image (PIL or [H, W, 3] array) -> float RGB [H, W, 3]."""
    from matplotlib import colormaps

    rgb = np.asarray(image, dtype=np.float64)
    rgb = rgb / 255.0 if rgb.max() > 1.0 else rgb
    h = heatmap.detach().cpu().float().numpy() if isinstance(heatmap, torch.Tensor) else np.asarray(heatmap, float)
    if h.shape != rgb.shape[:2]:
        raise ValueError(f"overlay: heatmap {h.shape} and image {rgb.shape[:2]} differ; resize the image to the map.")
    span = h.max() - h.min()
    h = (h - h.min()) / span if span > 0 else np.zeros_like(h)
    return (1 - alpha) * rgb[..., :3] + alpha * colormaps[cmap](h)[..., :3]
