"""Inside CLIP's ViT: run the visual transformer step by step and keep what happens inside.

`trace_vit(model, images)` recomputes `model.visual(images)` with attention written out explicitly, so it
can return every block's residual stream and attention probabilities. Its output equals
`model.encode_image(images)` (tested for ViT-B/32, B/16 and ToyCLIP).

Shapes: B images, N = 1 + grid² tokens (CLS first), D = width, H heads, d_h = D / H, L blocks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange


@dataclass
class ViTTrace:
    residuals: list[torch.Tensor]  # L + 1 tensors [B, N, D]: after ln_pre, then after each block
    attn_probs: list[torch.Tensor]  # L tensors [B, H, N, N]: post-softmax attention of each block
    values: list[torch.Tensor]  # L tensors [B, H, N, d_h]: each block's per-head values
    attn_out: list[torch.Tensor]  # L tensors [B, N, D]: each block's attention output (after out_proj)
    mlp_out: list[torch.Tensor]  # L tensors [B, N, D]: each block's MLP output
    embedding: torch.Tensor  # [B, embed_dim]: ln_post(CLS) @ proj, equal to model.encode_image(images)

    @property
    def final_cls(self) -> torch.Tensor:  # [B, D]: the CLS residual that ln_post reads
        return self.residuals[-1][:, 0]


def patch_tokens(visual, images: torch.Tensor) -> torch.Tensor:
    """Images [B, 3, R, R] -> tokens after the patch conv, CLS, positional embedding and ln_pre: [B, N, D]."""
    x = visual.conv1(images.to(visual.conv1.weight.dtype))  # [B, D, g, g]: one D-vector per patch
    x = rearrange(x, "b d gh gw -> b (gh gw) d")  # [B, g², D], patches in reading order
    cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)  # [B, 1, D]
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)  # [B, N, D]
    return visual.ln_pre(x)


def block_attention(block, x: torch.Tensor):
    """One block's attention written out. x [B, N, D] -> (probs [B,H,N,N], values [B,H,N,d_h], out [B,N,D])."""
    attn = block.attn
    y = block.ln_1(x)
    q, k, v = (y @ attn.in_proj_weight.T + attn.in_proj_bias).chunk(3, dim=-1)  # [B, N, D] each
    q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=attn.num_heads) for t in (q, k, v))
    probs = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)  # [B, H, N, N]
    heads = rearrange(probs @ v, "b h n d -> b n (h d)")  # concatenated heads, [B, N, D]
    return probs, v, attn.out_proj(heads)


def trace_vit(model, images: torch.Tensor) -> ViTTrace:
    visual = getattr(model, "visual", model)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"trace_vit expects images [B, 3, H, W]; got {tuple(images.shape)}. Use the model's preprocess.")
    if images.shape[-1] != visual.input_resolution:
        raise ValueError(f"trace_vit: images are {images.shape[-1]} px but the model expects {visual.input_resolution} px.")
    x = patch_tokens(visual, images)
    residuals, probs_all, values, attn_outs, mlp_outs = [x], [], [], [], []
    for block in visual.transformer.resblocks:
        probs, v, attn_out = block_attention(block, x)
        x = x + attn_out
        mlp_out = block.mlp(block.ln_2(x))
        x = x + mlp_out
        residuals.append(x)
        probs_all.append(probs)
        values.append(v)
        attn_outs.append(attn_out)
        mlp_outs.append(mlp_out)
    embedding = visual.ln_post(x[:, 0]) @ visual.proj  # [B, embed_dim]
    return ViTTrace(residuals, probs_all, values, attn_outs, mlp_outs, embedding)
