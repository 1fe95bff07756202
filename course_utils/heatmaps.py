"""Spatial heatmaps from the decomposition (the "critical line" from the course notes), and overlays drawn with matplotlib.

The critical line, for a decomposition `attn` [B, L, N, H, d] (layers, source tokens, heads) and prompts [P, d]:

    attn[0, :, 1:, :].sum(axis=(0, 2)) @ text.T      -> [N-1, P]: each image patch's direct effect, read by each prompt

`patch_scores` is that line (for every image); `to_grid` puts the g² patches back on their g x g grid (7x7 for ViT-B/32,
14x14 for B/16, 16x16 for L/14, 8x8 for ToyCLIP), `upsample` stretches the grid to the image, and `relative_to_prompts`
subtracts the mean over prompts. `textspan_heatmap` chains them for one image.

Scale. A map's value at a pixel is a dot product of a patch's summed contributions with a unit text embedding.
- `normalize=False` (the default here): contributions in `encode_image`'s own scale, so a map sums (over patches,
  before upsampling) to the patches' share of the image-text dot product. Real CLIP's embeddings have norm ≈ 10-30.
- `normalize=True`: the authors' scale (their demo divides by the embedding's norm): the same maps divided by
  ‖embedding‖, so they read as shares of the *cosine* similarity that zero-shot classification uses.
`convention` ("paper" or "centred") is passed to `decompose`: who owns ln_post's mean and β (notebook 05).
`token_maps` computes the critical line through `decompose.text_scores`: the same numbers, without the full tensor.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from .decompose import select_parts, text_scores
from .models import vit_visual


def patch_scores(attn: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
    """attn [B, L, N, H, d], texts [P, d] -> [B, P, N-1]: sum layers and heads, drop CLS, dot with each text.

    Taught in: notebook 07, "The critical line, with the real shapes".
    """
    per_patch = attn[:, :, 1:].sum(dim=(1, 3))  # [B, N-1, d]: every layer's and head's share, per source patch
    return (per_patch @ text_embeddings.T).transpose(1, 2)  # [B, P, N-1]


def to_grid(scores: torch.Tensor) -> torch.Tensor:
    """[..., g²] in reading order (row by row) -> [..., g, g].

    Taught in: notebook 07, "From patches to a picture".
    """
    g = math.isqrt(scores.shape[-1])
    if g * g != scores.shape[-1]:
        raise ValueError(f"to_grid: {scores.shape[-1]} patches is not a square grid; drop the CLS token first.")
    return rearrange(scores, "... (gh gw) -> ... gh gw", gh=g)


def upsample(grid_maps: torch.Tensor, size: int) -> torch.Tensor:
    """[B, P, g, g] -> [B, P, size, size], bilinear (pixel centres aligned: F.interpolate's default).

    Taught in: notebook 07, "From patches to a picture".
    """
    return F.interpolate(grid_maps, size=(size, size), mode="bilinear", align_corners=False)


def relative_to_prompts(maps: torch.Tensor) -> torch.Tensor:
    """[..., P, H, W] minus the mean over the P prompts: what is special about each prompt, here.

    Taught in: notebook 07, "Absolute or relative?".
    """
    return maps - maps.mean(dim=-3, keepdim=True)


@torch.no_grad()
def token_maps(model, images: torch.Tensor, text_embeddings: torch.Tensor, layers=None, heads=None,
               normalize: bool = False, convention: str = "paper") -> torch.Tensor:
    """Direct-effect heatmaps: [B, P, H_img, W_img] for P text embeddings (image tokens only, CLS dropped).

    Scale: dot products with unit texts of contributions in encode_image's scale (normalize=False) or divided by
    ‖embedding‖ (normalize=True, the authors'); see the module docstring.
    Used by: textspan_heatmap, toyclip.pointing_game and tests/test_decompose.py.
    """
    texts = F.normalize(text_embeddings.float(), dim=-1)  # [P, d]; texts may come from another device
    # The critical line (patch_scores on decompose's attn), with each head's readout turned to the texts first:
    # the same numbers (tested), without the [B, L, N, H, d] tensor
    parts = text_scores(model, images, texts, normalize=normalize, convention=convention)  # [B, L, N, H, P]
    chosen = select_parts(parts, layers, heads)  # [B, L', N, H', P]
    scores = chosen[:, :, 1:].sum(dim=(1, 3)).transpose(1, 2)  # [B, P, g²]: image tokens only
    return upsample(to_grid(scores), images.shape[-1])


def textspan_heatmap(model, image: torch.Tensor, text_embeddings: torch.Tensor, layers=None, heads=None,
                     relative: bool = True, normalize: bool = False, convention: str = "paper") -> torch.Tensor:
    """image [3, R, R] (preprocessed), text_embeddings [P, d] -> [P, R, R].

    relative=True subtracts the mean over the P prompts. Scale: as token_maps (normalize=True: the authors' scale).

    Taught in: notebook 07, "From patches to a picture".
    """
    visual = vit_visual(model, "textspan_heatmap")
    n_layers, n_heads = len(visual.transformer.resblocks), visual.transformer.resblocks[0].attn.num_heads
    for name, chosen, n in (("layer", layers, n_layers), ("head", heads, n_heads)):
        bad = [i for i in ([chosen] if isinstance(chosen, int) else chosen or []) if not -n <= i < n]
        if bad:
            raise IndexError(f"textspan_heatmap: {name} {bad[0]} doesn't exist; this model has {n} {name}s (0..{n - 1}).")
    if text_embeddings.ndim != 2 or len(text_embeddings) == 0:
        raise ValueError(f"textspan_heatmap: text_embeddings must be [P, d] with P >= 1; got {tuple(text_embeddings.shape)}.")
    if image.ndim != 3:
        raise ValueError(f"textspan_heatmap: one image [3, R, R] please; got {tuple(image.shape)}.")
    maps = token_maps(model, image[None], text_embeddings, layers, heads, normalize, convention)[0]  # [P, R, R]
    return relative_to_prompts(maps) if relative else maps


def overlay(image, heatmap, cmap: str = "jet", alpha: float = 0.5) -> np.ndarray:
    """Blend a heatmap [H, W] (min-max normalised) over an image (PIL or [H, W, 3] array) -> float RGB [H, W, 3].

    Taught in: notebook 07, "From patches to a picture".
    """
    from matplotlib import colormaps

    if isinstance(image, torch.Tensor):  # an image tensor [H, W, 3] on any device
        image = image.detach().cpu().double().numpy()
    rgb = np.asarray(image, dtype=np.float64)
    rgb = rgb / 255.0 if rgb.max() > 1.0 else rgb
    h = heatmap.detach().cpu().float().numpy() if isinstance(heatmap, torch.Tensor) else np.asarray(heatmap, float)
    if h.shape != rgb.shape[:2]:
        raise ValueError(f"overlay: heatmap {h.shape} and image {rgb.shape[:2]} differ; resize the image to the map.")
    span = h.max() - h.min()
    h = (h - h.min()) / span if span > 0 else np.zeros_like(h)
    return (1 - alpha) * rgb[..., :3] + alpha * colormaps[cmap](h)[..., :3]
