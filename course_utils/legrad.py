"""LeGrad (Bousselham et al., 2024): a heatmap from the gradient of the image-text score w.r.t. attention.

For each chosen block l, LeGrad asks "which attention links, if strengthened, would raise this prompt's score
*as read at block l*?":

    s_l  = normalise(ln_post(mean over tokens of x_l) @ proj)       x_l: block l's output [N, D]
    g_l  = d(s_l . t) / d A_l                                        A_l: block l's attention probs [H, N, N]
    map  = sum over l of  mean over heads and query rows of ReLU(g_l), CLS key dropped  -> [g²] -> grid

then min-max normalised per prompt and upsampled to the image. The authors' default reads the last two blocks.

Two choices make ours cheap. Blocks before the first chosen one run without autograd (nothing there is
differentiated). And P prompts share one forward pass: the P gradients of the P scores come from one
*batched* backward pass (`is_grads_batched`), instead of running the image P times.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange

from .inside_vit import attention_heads, check_images, patch_tokens, run_blocks
from .models import vit_visual
from .zero_shot import accuracy


def default_layers(n_layers: int) -> list[int]:
    """The authors' choice (legrad-torch's `layer_index=-2`): the last two blocks.

    Taught in: notebook 08, "LeGrad, step by step".
    """
    return [n_layers - 2, n_layers - 1]


def resolve_layers(layers, n_layers: int, who: str = "legrad") -> list[int]:
    """None -> the default; ints (negative count from the end) -> sorted, checked block indices.

    Used by: legrad.
    """
    if layers is None:
        return default_layers(n_layers)
    chosen = [layers] if isinstance(layers, int) else list(layers)
    if not chosen:
        raise ValueError(f"{who}: layers is empty; pass block indices 0..{n_layers - 1} or None for the default.")
    bad = [l for l in chosen if not -n_layers <= l < n_layers]
    if bad:
        raise IndexError(f"{who}: layer {bad[0]} doesn't exist; this model has {n_layers} blocks (0..{n_layers - 1}).")
    return sorted({l % n_layers for l in chosen})


def check_prompts(text_embeddings: torch.Tensor, embed_dim: int, who: str) -> None:
    """Raise a ValueError unless text_embeddings is [P, d] with P >= 1 and d == embed_dim.

    Used by: legrad.
    """
    if text_embeddings.ndim != 2 or len(text_embeddings) == 0:
        raise ValueError(f"{who}: text_embeddings must be [P, d] with at least one prompt; got "
                         f"{tuple(text_embeddings.shape)}. Encode a non-empty list with zero_shot.encode_texts.")
    if text_embeddings.shape[1] != embed_dim:
        raise ValueError(f"{who}: text embeddings have d={text_embeddings.shape[1]} but the image side has "
                         f"d={embed_dim}; encode the prompts with the same model.")


def one_image(visual, image: torch.Tensor, who: str) -> torch.Tensor:
    """[3, R, R] or [1, 3, R, R] -> [1, 3, R, R], checked against the model's resolution.

    Used by: legrad.
    """
    batch = image[None] if image.ndim == 3 else image
    if batch.ndim != 4 or batch.shape[0] != 1:
        raise ValueError(f"{who}: one preprocessed image [3, R, R] please; got {tuple(image.shape)}.")
    check_images(visual, batch)
    return batch


def token_mean_embedding(x: torch.Tensor, ln_weight, ln_bias, proj, eps: float = 1e-5) -> torch.Tensor:
    """Block output x [B, N, D] read as an image embedding: normalise(LayerNorm(mean over tokens) @ proj) -> [B, d].

    Not the CLS token (that is what encode_image reads): LeGrad averages all tokens, CLS included.
    Taught in: notebook 08, "LeGrad, step by step".
    """
    pooled = F.layer_norm(x.mean(dim=1), (x.shape[-1],), ln_weight, ln_bias, eps)  # [B, D]
    return F.normalize(pooled @ proj, dim=-1)  # [B, d]


def layer_score(visual, x: torch.Tensor) -> torch.Tensor:
    """A block's output x [B, N, D] through the model's own ln_post and proj -> [B, d], unit length.

    Taught in: notebook 08, "LeGrad, step by step"; notebook 08, "Each method's premise, measured before any ranking".
    """
    return token_mean_embedding(x, visual.ln_post.weight, visual.ln_post.bias, visual.proj, visual.ln_post.eps)


def block_with_probs(block, x: torch.Tensor):
    """One block with its attention probabilities as a leaf to differentiate. x [1, N, D] -> (probs, out).

    Taught in: notebook 08, "LeGrad, step by step".
    """
    attn = block.attn
    probs, v = attention_heads(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias, attn.num_heads)  # [1,H,N,N]
    probs = probs.detach().requires_grad_()  # a leaf: everything upstream is held fixed
    mid = x + attn.out_proj(rearrange(probs @ v, "b h n d -> b n (h d)"))
    return probs, mid + block.mlp(block.ln_2(mid))


def relevance_from_grad(grad: torch.Tensor) -> torch.Tensor:
    """Gradients [P, H, N, N] -> [P, N-1]: ReLU, mean over heads and query rows, CLS key dropped.

    Taught in: notebook 08, "LeGrad, step by step".
    Used by: toyclip.legrad_relevance (train's LeGrad term).
    """
    return grad.clamp(min=0).mean(dim=(1, 2))[:, 1:]


def min_max(maps: torch.Tensor) -> torch.Tensor:
    """[P, ...] -> each prompt's map scaled to [0, 1].

    Taught in: notebook 08, "LeGrad, step by step".
    """
    flat = maps.flatten(1)
    lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
    shape = (-1,) + (1,) * (maps.ndim - 1)
    return (maps - lo.view(shape)) / (hi - lo).clamp_min(1e-12).view(shape)


def legrad(model, image: torch.Tensor, text_embeddings: torch.Tensor, layers=None, normalize: bool = True) -> torch.Tensor:
    """LeGrad maps for one preprocessed image [3, R, R] and P text embeddings [P, d] -> [P, R, R] in [0, 1].

    Scale: normalize=True (LeGrad's own, as in the paper and legrad-torch) min-max scales each map to [0, 1].
    normalize=False skips that step and returns the summed relevance itself (notebook 08 uses it to
    ask whether a prompt for something absent gives a weaker map: min-max scaling hides that).
    Taught in: notebook 08, "LeGrad, step by step"; notebook 08, "Does a wrong prompt give a weak map?".
    """
    visual = vit_visual(model, "legrad")
    blocks = visual.transformer.resblocks
    chosen = resolve_layers(layers, len(blocks))
    check_prompts(text_embeddings, visual.proj.shape[1], "legrad")
    with torch.inference_mode(False), torch.enable_grad():  # callable from inside no_grad/inference_mode code
        batch = one_image(visual, image, "legrad").clone()
        texts = text_embeddings.clone().to(device=visual.proj.device, dtype=visual.proj.dtype)  # on the model's device
        texts = F.normalize(texts, dim=-1)  # [P, d]
        P = len(texts)
        with torch.no_grad():
            x = patch_tokens(visual, batch)  # [1, N, D]
        relevance = 0
        for l, block in enumerate(blocks[: chosen[-1] + 1]):
            if l not in chosen:
                with torch.no_grad():
                    x = block(x.transpose(0, 1)).transpose(0, 1)  # openai blocks take [N, B, D]
                continue
            probs, out = block_with_probs(block, x)
            scores = (layer_score(visual, out) @ texts.T)[0]  # [P]: this block's reading of each prompt
            if P == 1:  # one prompt: a plain backward pass (the batched form below costs about twice as much here)
                grad = torch.autograd.grad(scores[0], probs)[0][None]  # [1, 1, H, N, N]
            else:  # P backward passes in one: row p of the identity asks for the gradient of scores[p]
                eye = torch.eye(P, dtype=scores.dtype, device=scores.device)
                grad = torch.autograd.grad(scores, probs, eye, is_grads_batched=True)[0]  # [P, 1, H, N, N]
            relevance = relevance + relevance_from_grad(grad[:, 0])  # [P, g²]
            x = out.detach()
        grid = math.isqrt(relevance.shape[-1])
        maps = rearrange(relevance, "p (gh gw) -> p 1 gh gw", gh=grid)
        maps = F.interpolate(maps, size=batch.shape[-2:], mode="bilinear", align_corners=False)[:, 0]  # [P, R, R]
        return (min_max(maps) if normalize else maps).detach()


@torch.no_grad()
def readout_accuracy(model, images: torch.Tensor, labels: torch.Tensor, class_emb: torch.Tensor,
                     batch_size: int = 32) -> dict:
    """LeGrad's premise, tested: zero-shot top-1 of each block's token-mean readout, next to the CLS embedding's.

    images [B, 3, R, R] (preprocessed), labels [B], class_emb [C, d] -> {"cls": acc, "token_mean": [acc per block]}.
    LeGrad differentiates `layer_score`; its maps mean something only where that readout lives in the text space.
    Taught in: notebook 08, "Each method's premise, measured before any ranking".
    """
    visual = vit_visual(model, "readout_accuracy")
    cls, per_block = [], []
    for lo in range(0, len(images), batch_size):  # streamed: one block of one batch in memory at a time
        readouts = []
        for *_, x in run_blocks(visual, images[lo: lo + batch_size], cls_only=True):
            readouts.append(layer_score(visual, x))  # [b, d]
        cls.append(visual.ln_post(x[:, 0]) @ visual.proj)  # [b, d]: what encode_image returns
        per_block.append(torch.stack(readouts))  # [L, b, d]
    cls, per_block = torch.cat(cls), torch.cat(per_block, dim=1)  # [B, d], [L, B, d]
    class_emb = class_emb.to(cls.device)  # the classifier may have been built or saved elsewhere
    return dict(cls=accuracy(cls, class_emb, labels), token_mean=[accuracy(r, class_emb, labels) for r in per_block])
