"""Decomposing CLIP: the image embedding as an exact sum of direct contributions (Gandelsman et al., 2024).

The CLS residual that `ln_post` reads is a sum: the embedding term (CLS after ln_pre), plus for every block
its MLP output at CLS and its attention output at CLS. The attention output at CLS is itself a sum over
heads h and source tokens j:   attn_l[CLS] = Σ_h Σ_j  p_lh[CLS, j] · v_lh[j] · W_O,h  +  b_O,l.

`ln_post` is not linear, but with the image's *own* mean μ and standard deviation σ it is:
    ln_post(r) = γ ⊙ (r − μ(r)) / σ(r) + β,   and (r − μ(r)) is linear in r.
So each part p maps to  γ ⊙ (p − mean(p)) / σ(r) @ proj, with σ(r) fixed from the full residual, and the
constant β @ proj is split evenly over all parts. Out-projection biases are split evenly over that layer's
tokens and heads. The parts then sum to `encode_image` exactly (up to float rounding).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from .inside_vit import trace_vit


@dataclass
class Decomposition:
    attn: torch.Tensor  # [B, L, N, H, d]: CLS-query contribution of layer l, source token n, head h
    mlp: torch.Tensor  # [B, L + 1, d]: index 0 is the embedding term, index l + 1 is block l's MLP at CLS
    embedding: torch.Tensor  # [B, d]: model.encode_image(images), for checking

    def total(self) -> torch.Tensor:
        """Sum of every part: equals `embedding`."""
        return self.attn.sum(dim=(1, 2, 3)) + self.mlp.sum(dim=1)

    def tokens(self, layers=None, heads=None) -> torch.Tensor:
        """[B, N, d]: per-source-token contributions, summed over the chosen layers and heads (default all)."""
        a = self.attn if layers is None else self.attn[:, layers]
        a = a if heads is None else a[..., heads, :]
        return a.sum(dim=(1, 3)) if a.ndim == 5 else a.sum(dim=1)


def _ln_post_linear(visual, part: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """γ ⊙ (part − mean(part)) / σ, projected. part [B, ..., D], sigma [B] -> [B, ..., d]."""
    centred = part - part.mean(dim=-1, keepdim=True)
    shape = (-1,) + (1,) * (part.ndim - 1)
    return (centred / sigma.view(shape) * visual.ln_post.weight) @ visual.proj


@torch.no_grad()
def decompose(model, images: torch.Tensor) -> Decomposition:
    visual = getattr(model, "visual", model)
    trace = trace_vit(model, images)
    r = trace.final_cls.float()  # [B, D]
    sigma = torch.sqrt(r.var(dim=-1, unbiased=False) + visual.ln_post.eps)  # [B]
    L, N = len(trace.values), trace.residuals[0].shape[1]
    H = trace.values[0].shape[1]
    attn_parts = []
    for block, probs, v in zip(visual.transformer.resblocks, trace.attn_probs, trace.values):
        w_o = rearrange(block.attn.out_proj.weight, "D (h dh) -> h dh D", h=H)  # each head's slice of W_O
        weighted = probs[:, :, 0, :, None] * v  # [B, H, N, d_h]: p[CLS, j] · v_j, per head
        per_token = torch.einsum("bhnk,hkD->bnhD", weighted, w_o)  # [B, N, H, D]
        per_token = per_token + block.attn.out_proj.bias / (N * H)  # bias split evenly
        attn_parts.append(_ln_post_linear(visual, per_token, sigma))  # [B, N, H, d]
    attn = torch.stack(attn_parts, dim=1)  # [B, L, N, H, d]
    mlp_terms = [trace.residuals[0][:, 0]] + [m[:, 0] for m in trace.mlp_out]  # L + 1 terms [B, D]
    mlp = _ln_post_linear(visual, torch.stack(mlp_terms, dim=1), sigma)  # [B, L + 1, d]
    beta = (visual.ln_post.bias @ visual.proj) / (L * N * H + L + 1)  # the constant, split over every part
    return Decomposition(attn + beta, mlp + beta, trace.embedding)


@torch.no_grad()
def token_maps(model, images: torch.Tensor, text_embeddings: torch.Tensor, layers=None, heads=None) -> torch.Tensor:
    """Direct-effect heatmaps: [B, P, H_img, W_img] for P text embeddings (image tokens only, CLS dropped)."""
    visual = getattr(model, "visual", model)
    parts = decompose(model, images).tokens(layers, heads)[:, 1:]  # [B, g², d]
    scores = parts @ F.normalize(text_embeddings.float(), dim=-1).T  # [B, g², P]
    grid = visual.input_resolution // visual.conv1.kernel_size[0]
    maps = rearrange(scores, "b (gh gw) p -> b p gh gw", gh=grid)
    return F.interpolate(maps, size=images.shape[-2:], mode="bilinear", align_corners=False)
