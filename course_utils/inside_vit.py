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

from .by_hand import layer_norm  # notebook 01's LayerNorm (biased variance, eps 1e-5)
from .models import clip, vit_visual


@dataclass
class ViTTrace:
    """What trace_vit keeps: every block's residual stream, attention, values and outputs, and the embedding.

    Taught in: notebook 04, "Where does the CLS token look?"; notebook 05, "The residual stream is a sum".
    """
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
    """Images [B, 3, R, R] -> tokens after the patch conv, CLS, positional embedding and ln_pre: [B, N, D].

    The images may be on any device (e.g. `preprocess` output on the CPU): they are moved to the model's.
    Taught in: notebook 04, "One residual block, by hand"; notebook 08, "LeGrad, step by step".
    """
    weight = visual.conv1.weight
    x = visual.conv1(images.to(device=weight.device, dtype=weight.dtype))  # [B, D, g, g]: one D-vector per patch
    x = rearrange(x, "b d gh gw -> b (gh gw) d")  # [B, g², D], patches in reading order
    cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)  # [B, 1, D]
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)  # [B, N, D]
    return visual.ln_pre(x)


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, 3, R, R] -> [B, g², 3·p·p]: each patch flattened channel-first, the order of conv1.weight's inputs.

    With this order, `patchify(x, p) @ conv1.weight.flatten(1).T` equals the patch conv (notebook 04).

    Taught in: notebook 04, "Patches: a convolution that is really a linear map".
    """
    return rearrange(images, "b c (gh p1) (gw p2) -> b (gh gw) (c p1 p2)", p1=patch, p2=patch)


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """CLIP's MLP activation: x · sigmoid(1.702 x), a cheap approximation of GELU.

    Taught in: notebook 04, "One residual block, by hand".
    """
    return x * torch.sigmoid(1.702 * x)


def qkv_heads(y: torch.Tensor, in_proj_weight, in_proj_bias, n_heads: int):
    """Normalised tokens y [B, N, D] -> q, k, v, each [B, H, N, d_h], from in_proj's stacked W_q, W_k, W_v.

    Taught in: notebook 08, "LeGrad, step by step".
    """
    # y @ W.T + b, as one fused call (F.linear): the decomposition's forward pass then costs what encode_image's does
    q, k, v = torch.nn.functional.linear(y, in_proj_weight, in_proj_bias).chunk(3, dim=-1)  # [B, N, D] each
    return (rearrange(t, "b n (h d) -> b h n d", h=n_heads) for t in (q, k, v))


def attention_heads(y: torch.Tensor, in_proj_weight, in_proj_bias, n_heads: int):
    """Normalised tokens y [B, N, D] -> (probs [B, H, N, N], values [B, H, N, d_h]) with in_proj's q, k, v.

    Used by: multihead_self_attention, block_attention and course_utils.legrad.
    """
    q, k, v = qkv_heads(y, in_proj_weight, in_proj_bias, n_heads)
    probs = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)  # [B, H, N, N]
    return probs, v


def multihead_self_attention(y, in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias, n_heads: int):
    """nn.MultiheadAttention(y, y, y) written out: y [B, N, D] -> [B, N, D].

    Taught in: notebook 04, "One residual block, by hand".
    """
    probs, v = attention_heads(y, in_proj_weight, in_proj_bias, n_heads)
    heads = rearrange(probs @ v, "b h n d -> b n (h d)")  # concatenate the heads, [B, N, D]
    return heads @ out_proj_weight.T + out_proj_bias


def residual_block(x: torch.Tensor, p: dict, n_heads: int) -> torch.Tensor:
    """One ResidualAttentionBlock by hand. x [B, N, D]; p = block_params(block) -> [B, N, D].

    x = x + attn(ln_1(x));  x = x + c_proj(quick_gelu(c_fc(ln_2(x))))

    Taught in: notebook 04, "One residual block, by hand".
    """
    y = layer_norm(x, p["ln_1.weight"], p["ln_1.bias"])
    x = x + multihead_self_attention(y, p["attn.in_proj_weight"], p["attn.in_proj_bias"],
                                     p["attn.out_proj.weight"], p["attn.out_proj.bias"], n_heads)
    h = quick_gelu(layer_norm(x, p["ln_2.weight"], p["ln_2.bias"]) @ p["mlp.c_fc.weight"].T + p["mlp.c_fc.bias"])
    return x + h @ p["mlp.c_proj.weight"].T + p["mlp.c_proj.bias"]


def block_params(block) -> dict:
    """A block's weights as a plain {name: tensor} dict (detached, float32).

    Taught in: notebook 04, "One residual block, by hand".
    """
    return {name: t.detach().float() for name, t in block.state_dict().items()}


def cls_attention_maps(probs: torch.Tensor) -> torch.Tensor:
    """Attention probabilities [B, H, N, N] -> [B, H, g, g]: how much the CLS query attends to each patch.

    Taught in: notebook 04, "Where does the CLS token look?".
    """
    cls_to_patches = probs[:, :, 0, 1:]  # [B, H, g²]: query = CLS (row 0), keys = patches (CLS key dropped)
    grid = math.isqrt(cls_to_patches.shape[-1])
    return rearrange(cls_to_patches, "b h (gh gw) -> b h gh gw", gh=grid, gw=grid)


def block_attention(block, x: torch.Tensor, cls_only: bool = False):
    """One block's attention written out. x [B, N, D] -> (probs [B,H,N,N], values [B,H,N,d_h], out [B,N,D]).

    cls_only=True returns only the CLS query's row of the probabilities, [B, H, 1, N], and lets PyTorch's fused
    attention compute the output: the decomposition needs nothing else, and it is faster.

    Used by: run_blocks (so trace_vit and decompose) and tests/test_inside_vit.py.
    """
    attn = block.attn
    if not cls_only:
        probs, v = attention_heads(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias, attn.num_heads)
        heads = probs @ v
    else:
        q, k, v = qkv_heads(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias, attn.num_heads)
        heads = torch.nn.functional.scaled_dot_product_attention(q, k, v)  # [B, H, N, d_h]
        probs = torch.softmax(q[:, :, :1] @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)  # [B, H, 1, N]
    return probs, v, attn.out_proj(rearrange(heads, "b h n d -> b n (h d)"))


def check_images(visual, images: torch.Tensor) -> None:
    """Raise a ValueError unless images are [B, 3, R, R] at the model's input resolution.

    Used by: run_blocks and course_utils.legrad.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"trace_vit expects images [B, 3, H, W]; got {tuple(images.shape)}. Use the model's preprocess.")
    if images.shape[-1] != visual.input_resolution:
        raise ValueError(f"images are {images.shape[-1]} px but the model expects {visual.input_resolution} px; "
                         f"pass them through the model's preprocess first.")


def cls_block(block, x: torch.Tensor):
    """One block computed at the CLS position only. x [B, N, D] -> (probs [B, H, 1, N], values [B, H, N, d_h],
    attn_out [B, 1, D], mlp_out [B, 1, D], out [B, 1, D]).

    In the last block nothing reads the other positions: encode_image takes CLS alone. So the keys and values are
    needed for every token, but the query, the attention output and the MLP only at CLS (about a twelfth of a
    ViT-B forward pass saved).
    Used by: run_blocks (last_at_cls) and tests/test_inside_vit.py.
    """
    attn, D = block.attn, x.shape[-1]
    y = block.ln_1(x)  # [B, N, D]
    w, b = attn.in_proj_weight, attn.in_proj_bias  # W_q, W_k, W_v stacked: [3D, D], [3D]
    q = torch.nn.functional.linear(y[:, :1], w[:D], b[:D])  # [B, 1, D]
    k, v = torch.nn.functional.linear(y, w[D:], b[D:]).chunk(2, dim=-1)  # [B, N, D] each
    q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=attn.num_heads) for t in (q, k, v))
    probs = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)  # [B, H, 1, N]
    attn_out = attn.out_proj(rearrange(probs @ v, "b h n d -> b n (h d)"))  # [B, 1, D]
    mid = x[:, :1] + attn_out
    mlp_out = block_mlp(block, block.ln_2(mid))
    return probs, v, attn_out, mlp_out, mid + mlp_out


def block_mlp(block, x: torch.Tensor) -> torch.Tensor:
    """block.mlp(x), x [B, N, D] -> [B, N, D], equal bit for bit; with no gradient recorded, QuickGELU (quick_gelu
    above) runs in place.

    openai's QuickGELU, x · sigmoid(1.702 x), makes three temporaries as large as the hidden layer (4D wide: 20 MB
    each for a ViT-B/32 batch of 32). glibc gives blocks that large back to the system when they are freed, and the
    next block's are then fresh pages the system must zero: on this project's CPU, 0.21-0.35 s of a batch's forward
    pass went to QuickGELU, 0.07-0.08 s in place, where it makes one temporary (benchmarks/decompose_cost.py counts
    the page faults). Under autograd, or for another activation, it is the module itself (the in-place product
    would overwrite what backward needs).
    Used by: run_blocks and cls_block (so decompose, head_contributions and trace_vit).
    """
    mlp = block.mlp
    if torch.is_grad_enabled() or not isinstance(mlp.gelu, clip.model.QuickGELU):
        return mlp(x)
    h = mlp.c_fc(x)  # [B, N, 4D]
    return mlp.c_proj(h.mul_(h.mul(1.702).sigmoid_()))  # h · sigmoid(1.702 h), h overwritten


def run_blocks(visual, images: torch.Tensor, cls_only: bool = False, last_at_cls: bool = False):
    """Yield (x_in, probs, values, attn_out, mlp_out, x_out) block by block, keeping nothing from earlier blocks.

    The streaming form of trace_vit, for analyses that must not hold every block's tensors at once.
    cls_only: probs is only the CLS query's row, [B, H, 1, N] (see block_attention).
    last_at_cls: the last block runs at CLS only (cls_block), so its attn_out, mlp_out and x_out are [B, 1, D].

    Used by: trace_vit, decompose (last_at_cls) and decompose.head_contributions (last_at_cls).
    """
    check_images(visual, images)
    x = patch_tokens(visual, images)
    blocks = visual.transformer.resblocks
    for i, block in enumerate(blocks):
        if last_at_cls and i == len(blocks) - 1:
            yield (x, *cls_block(block, x))
            return
        probs, v, attn_out = block_attention(block, x, cls_only)
        mid = x + attn_out
        mlp_out = block_mlp(block, block.ln_2(mid))
        out = mid + mlp_out
        yield x, probs, v, attn_out, mlp_out, out
        x = out


def trace_vit(model, images: torch.Tensor, cls_only: bool = False) -> ViTTrace:
    """Every block's residual stream and attention (cls_only: just the CLS query's row, [B, H, 1, N]).

    Taught in: notebook 04, "Where does the CLS token look?"; notebook 05, "The residual stream is a sum".
    """
    visual = vit_visual(model, "trace_vit")
    residuals, probs_all, values, attn_outs, mlp_outs = [], [], [], [], []
    for x_in, probs, v, attn_out, mlp_out, x in run_blocks(visual, images, cls_only):
        residuals.append(x_in)
        probs_all.append(probs)
        values.append(v)
        attn_outs.append(attn_out)
        mlp_outs.append(mlp_out)
    residuals.append(x)
    embedding = visual.ln_post(x[:, 0]) @ visual.proj  # [B, embed_dim]
    return ViTTrace(residuals, probs_all, values, attn_outs, mlp_outs, embedding)
