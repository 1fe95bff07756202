"""Metrics: scoring heatmaps against ground-truth masks.

Pointing game (Zhang et al., 2016, "Top-down neural attention by excitation backprop"): a map *hits* an object
when its maximum lies on the object, within a small tolerance. The original protocol allows 15 px at ~224 px
input; `tolerance_px` scales that to the image at hand (15 / 224 * 64 ≈ 4 px for the toy world, which is
also half a ViT patch of 8 px: the map's own resolution). `tolerance_px=0` is the strict variant.
"""
from __future__ import annotations

import numpy as np
import torch


def standard_tolerance(image_size: int) -> int:
    """The pointing game's 15 px at 224 px, scaled to `image_size`."""
    return round(15 * image_size / 224)


def pointing_hit(heatmap, mask, tolerance_px: float = 0) -> bool:
    """True if the heatmap's maximum lies within `tolerance_px` pixels of a mask pixel. heatmap, mask: [H, W]."""
    h = heatmap.detach().cpu().numpy() if isinstance(heatmap, torch.Tensor) else np.asarray(heatmap)
    m = np.asarray(mask, dtype=bool)
    if h.shape != m.shape:
        raise ValueError(f"pointing_hit: heatmap {h.shape} and mask {m.shape} differ; upsample the map first.")
    if not m.any():
        raise ValueError("pointing_hit: the mask is empty; there is no object to point at.")
    y, x = np.unravel_index(int(np.argmax(h)), h.shape)
    if m[y, x]:
        return True
    ys, xs = np.nonzero(m)
    return bool(np.min((ys - y) ** 2 + (xs - x) ** 2) <= tolerance_px**2)
