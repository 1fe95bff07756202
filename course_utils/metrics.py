"""Metrics: scoring heatmaps against ground-truth masks.

Pointing game (Zhang et al., 2016, "Top-down neural attention by excitation backprop"): a map *hits* an object
when its maximum lies on the object, within a small tolerance. The original protocol allows 15 px at ~224 px
input; `tolerance_px` scales that to the image at hand (15 / 224 * 64 ≈ 4 px for the toy world, which is
also half a ViT patch of 8 px: the map's own resolution). `tolerance_px=0` is the strict variant.

Maps and masks may be numpy arrays or tensors on any device (a GPU model's maps need no `.cpu()` first).
"""
from __future__ import annotations

import numpy as np
import torch


def standard_tolerance(image_size: int) -> int:
    """The pointing game's 15 px at 224 px, scaled to `image_size`.

    Taught in: notebook 07, "Absolute or relative?".
    """
    return round(15 * image_size / 224)


def _map_and_mask(caller: str, heatmap, mask) -> tuple[np.ndarray, np.ndarray]:
    """heatmap [H, W] (array or tensor on any device) -> numpy, mask -> bool numpy; their shapes must agree."""
    h = _host(heatmap) if isinstance(heatmap, torch.Tensor) else np.asarray(heatmap)
    m = _as_bool(mask)
    if h.shape != m.shape:
        raise ValueError(f"{caller}: heatmap {h.shape} and mask {m.shape} differ; upsample the map first.")
    return h, m


def pointing_hit(heatmap, mask, tolerance_px: float = 0) -> bool:
    """True if the heatmap's maximum lies within `tolerance_px` pixels of a mask pixel. heatmap, mask: [H, W].
    When several pixels share the maximum, the first in reading order counts (see peak_share).

    Taught in: notebook 07, "Absolute or relative?".
    """
    h, m = _map_and_mask("pointing_hit", heatmap, mask)
    if not m.any():
        raise ValueError("pointing_hit: the mask is empty; there is no object to point at.")
    y, x = np.unravel_index(int(np.argmax(h)), h.shape)
    if m[y, x]:
        return True
    ys, xs = np.nonzero(m)
    return bool(np.min((ys - y) ** 2 + (xs - x) ** 2) <= tolerance_px**2)


def peak_share(heatmap, mask) -> float:
    """The share of the heatmap's maximal pixels that lie on the mask: 1.0 or 0.0 when the maximum is one pixel, and
    what a strict hit is worth when the maximum is a plateau, if ties are broken at random. heatmap, mask: [H, W].

    Why it exists: bilinear upsampling (heatmaps.upsample, align_corners=False) repeats each border patch's value over
    a band of pixels as wide as half a patch (4 px for the toy world's 8 px patches), so a map that peaks on a border
    patch has several exactly equal maximal pixels. pointing_hit takes the first of them in reading order (top-left),
    which is a rule about scanning, not about the map.
    Used by: toyclip.pointing_game (python -m course_utils.toyclip evaluate).
    """
    h, m = _map_and_mask("peak_share", heatmap, mask)
    top = h == h.max()  # [H, W]: every pixel at the maximum
    return float((top & m).sum() / top.sum())


# ---- zero-shot segmentation (the ImageNet-Segmentation protocol used for TextSpan and LeGrad) ---------------
def _host(x: torch.Tensor) -> np.ndarray:
    """A tensor on any device -> numpy, same values (bfloat16, which numpy lacks, as float32)."""
    x = x.detach().cpu()
    return (x.float() if x.dtype == torch.bfloat16 else x).numpy()


def _as_numpy(x) -> np.ndarray:
    return x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def _as_bool(x) -> np.ndarray:
    """A mask or prediction (array, or tensor on any device) -> bool array; nonzero is True."""
    return x.detach().cpu().bool().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=bool)


def binarize(heatmap) -> np.ndarray:
    """Foreground = pixels above the map's own mean (the protocol's threshold). [H, W] -> bool [H, W].

    Taught in: notebook 07, "Zero-shot segmentation, scored".
    """
    h = _as_numpy(heatmap)
    return h > h.mean()


def _binary_pair(predicted, mask, who: str) -> tuple[np.ndarray, np.ndarray]:
    p, m = _as_bool(predicted), _as_bool(mask)
    if p.shape != m.shape:
        raise ValueError(f"{who}: prediction {p.shape} and mask {m.shape} differ; upsample the map first.")
    return p, m


def pixel_accuracy(predicted, mask) -> float:
    """Share of pixels where the binary prediction equals the mask.

    Taught in: notebook 07, "Zero-shot segmentation, scored".
    """
    p, m = _binary_pair(predicted, mask, "pixel_accuracy")
    return float((p == m).mean())


def mean_iou(predicted, mask) -> float:
    """Mean over the two classes (foreground, background) of intersection over union.

    Taught in: notebook 07, "Zero-shot segmentation, scored".
    """
    p, m = _binary_pair(predicted, mask, "mean_iou")
    ious = []
    for a, b in ((p, m), (~p, ~m)):
        union = (a | b).sum()
        ious.append((a & b).sum() / union if union else 1.0)
    return float(np.mean(ious))


def average_precision(heatmap, mask) -> float:
    """Average precision of the map's scores as a foreground detector (pixels ranked by score; ties kept together).

    Taught in: notebook 07, "Zero-shot segmentation, scored".
    """
    h, m = _as_numpy(heatmap).ravel(), _as_bool(mask).ravel()
    if h.shape != m.shape:
        raise ValueError(f"average_precision: heatmap and mask sizes differ ({h.size} vs {m.size}).")
    if not m.any():
        raise ValueError("average_precision: the mask is empty; there is no foreground to rank.")
    order = np.argsort(-h, kind="stable")
    scores, hits = h[order], m[order]
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]  # a threshold between distinct scores only
    tp, fp = np.cumsum(hits)[last_of_tie], np.cumsum(~hits)[last_of_tie]
    precision, recall = tp / (tp + fp), tp / m.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def segmentation_scores(heatmap, mask) -> dict:
    """pixel accuracy, mIoU (after `binarize`) and average precision (on the raw scores) for one map.

    Used by: tests/test_metrics.py.
    """
    predicted = binarize(heatmap)
    return dict(pixel_acc=pixel_accuracy(predicted, mask), miou=mean_iou(predicted, mask),
                ap=average_precision(heatmap, mask))
