"""Decomposing CLIP: the image embedding as an exact sum of direct contributions (Gandelsman et al., 2024).

The CLS residual that `ln_post` reads is a sum: the embedding term (CLS after ln_pre), plus for every block l
its MLP output at CLS and its attention output at CLS. The attention output at CLS is itself a sum over heads
h and source tokens j:

    attn_l[CLS] = Σ_h Σ_j  p_lh[CLS, j] · v_lh[j] · W_O,h  +  b_O,l

`ln_post` is not linear, but with the image's *own* mean μ and standard deviation σ it is:
    ln_post(r) = γ ⊙ (r − μ(r)) / σ(r) + β,   and r − μ(r) is linear in r.
So each part p maps to  (p − mean(p)) / σ · γ @ proj,  with σ taken from the full residual. The constant β @ proj
is split evenly over all parts, and each layer's out-projection bias evenly over its tokens and heads. The parts
then sum to `encode_image` exactly (up to float rounding).

Folding (why this costs little more than a forward pass): centring, γ and proj are one matrix
G = (γ ⊙ proj) − mean over rows, [D, d], and W_O,h @ G is one matrix per head, [d_h, d]. Each head's
value vectors go through that once, instead of every [D] contribution going through ln_post and proj.

Two conventions:
- unnormalised (`normalize=False`): the parts sum to `model.encode_image(images)`;
- normalised (`normalize=True`): every part is divided by the norm of the whole embedding, so the parts sum to
  the *unit* embedding that zero-shot classification compares with texts. This is the convention of the paper's
  code, which divides the projected contributions by the norm of the image representation.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .data import Collate
from .inside_vit import run_blocks, trace_vit


@dataclass
class Decomposition:
    """The decomposition of a batch: attention [B, L, N, H, d] and MLP [B, L + 1, d] parts that sum to `embedding`.

    Taught in: notebook 05, "Folding: why this is cheap".
    """
    attn: torch.Tensor  # [B, L, N, H, d]: CLS-query contribution of layer l, source token n, head h
    mlp: torch.Tensor  # [B, L + 1, d]: index 0 is the embedding term, index l + 1 is block l's MLP at CLS
    embedding: torch.Tensor  # [B, d]: model.encode_image(images) (unit-norm if normalize=True), for checking

    def total(self) -> torch.Tensor:
        """Sum of every part: equals `embedding`."""
        return self.attn.sum(dim=(1, 2, 3)) + self.mlp.sum(dim=1)

    def select(self, layers=None, heads=None) -> torch.Tensor:
        """[B, L', N, H', d]: `attn` restricted to the chosen layers and heads (default all)."""
        a = self.attn if layers is None else self.attn[:, _as_index(layers)]
        return a if heads is None else a[..., _as_index(heads), :]

    def tokens(self, layers=None, heads=None) -> torch.Tensor:
        """[B, N, d]: per-source-token contributions, summed over the chosen layers and heads (default all)."""
        return self.select(layers, heads).sum(dim=(1, 3))

    def heads(self) -> torch.Tensor:
        """[B, L, H, d]: each head's contribution, summed over source tokens."""
        return self.attn.sum(dim=2)

    def layers(self) -> torch.Tensor:
        """[B, L, d]: each attention layer's contribution, summed over tokens and heads."""
        return self.attn.sum(dim=(2, 3))


def _as_index(x):
    return [x] if isinstance(x, int) else list(x)


def fold_ln_proj(weight: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    """G [D, d] with  (p − mean(p)) ⊙ γ @ proj = p @ G  for every p [.., D]: centring, γ and proj in one matrix.

    Taught in: notebook 05, "Folding: why this is cheap".
    """
    scaled = weight[:, None] * proj  # [D, d]: γ ⊙ proj, row by row
    return scaled - scaled.mean(dim=0, keepdim=True)  # subtracting the mean of p = subtracting the row mean of G


def folded_readout(visual) -> tuple[torch.Tensor, torch.Tensor]:
    """G [D, d] (see fold_ln_proj), so  ln_post-linear(p) @ proj = p @ G / σ;  and the constant β @ proj [d].

    Used by: decompose and head_contributions (G and β @ proj of notebook 05, "Folding: why this is cheap").
    """
    return fold_ln_proj(visual.ln_post.weight, visual.proj), visual.ln_post.bias @ visual.proj


def linearised_layer_norm(parts: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                          eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm as a linear map, fixed by the full residual's σ. parts [B, P, D], residual [B, D] -> [B, P, D].

    If the parts sum to the residual, the outputs sum to layer_norm(residual) minus its bias β.

    Taught in: notebook 05, "Making `ln_post` linear".
    """
    sigma = _sigma(residual, eps)  # [B]: the image's own σ
    centred = parts - parts.mean(dim=-1, keepdim=True)  # [B, P, D]
    return centred / sigma[:, None, None] * weight


def head_token_terms(cls_probs: torch.Tensor, values: torch.Tensor, out_proj_weight: torch.Tensor) -> torch.Tensor:
    """What head h moves from token j into the CLS position: p[CLS, j] · v_j @ W_O,h.

    cls_probs [B, H, N] (row 0 of the attention), values [B, H, N, d_h], out_proj_weight [D, D] -> [B, N, H, D].
    Summed over N and H (plus the out_proj bias) this is the attention block's output at CLS.

    Taught in: notebook 05, "Heads and source tokens".
    """
    return torch.einsum("bhn,bhnk,hkD->bnhD", cls_probs, values, _per_head(out_proj_weight, values.shape[1]))


def _per_head(out_proj_weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[D, D] -> [H, d_h, D]: each head's slice of W_O (the columns that read that head's part of the concat)."""
    return rearrange(out_proj_weight, "D (h dh) -> h dh D", h=n_heads)


def head_readouts(block, G: torch.Tensor) -> torch.Tensor:
    """[H, d_h, d]: each head's slice of W_O followed by G (out_proj, centring, γ and proj folded together).

    Used by: decompose and head_contributions (W_O,h G of notebook 05, "Folding: why this is cheap").
    """
    return _per_head(block.attn.out_proj.weight, block.attn.num_heads) @ G


def _sigma(residual: torch.Tensor, eps: float) -> torch.Tensor:
    """[B, D] -> [B]: LayerNorm's σ of each row (biased variance, eps inside the root)."""
    return torch.sqrt(residual.var(dim=-1, unbiased=False) + eps)


def _readout_scales(visual, final_cls: torch.Tensor, embedding: torch.Tensor, beta: torch.Tensor, n_parts: int,
                    normalize: bool):
    """The per-image bookkeeping every part shares. final_cls [B, D], embedding [B, d], beta [d] ->
    scale [B, 1] = 1 / (σ · ‖embedding‖), part_beta [B, d] = one part's share of β @ proj (over the norm too),
    norm [B, 1] (ones when normalize=False)."""
    sigma = _sigma(final_cls.float(), visual.ln_post.eps)[:, None]  # [B, 1]: the image's own σ
    norm = embedding.norm(dim=-1, keepdim=True) if normalize else torch.ones_like(sigma)  # [B, 1]
    return 1 / (sigma * norm), beta / n_parts / norm, norm


@torch.no_grad()
def decompose(model, images: torch.Tensor, normalize: bool = False) -> Decomposition:
    """Every direct contribution to `model.encode_image(images)`: attention [B, L, N, H, d] and MLP [B, L+1, d].

    Taught in: notebook 05, "Folding: why this is cheap"; notebook 07, "The critical line, with the real shapes".
    """
    visual = getattr(model, "visual", model)
    trace = trace_vit(model, images, cls_only=True)  # only the CLS row of attention is needed
    G, beta = folded_readout(visual)
    L, (B, N, _) = len(trace.values), trace.residuals[0].shape
    H, d = trace.values[0].shape[1], G.shape[1]
    # ln_post's 1/σ (and 1/‖embedding‖ if normalised); the constant β @ proj split over every part
    scale, part_beta, norm = _readout_scales(visual, trace.final_cls, trace.embedding, beta, L * N * H + L + 1, normalize)
    # Stored head-major so each layer is one batched matmul written in place; `attn` is a permuted view.
    store = torch.empty(L, H, B * N, d, dtype=G.dtype, device=G.device)
    for l, (block, probs, v) in enumerate(zip(visual.transformer.resblocks, trace.attn_probs, trace.values)):
        weighted = probs[:, :, 0, :, None] * v * scale[:, :, None, None]  # [B, H, N, d_h]: p[CLS, j] v_j / σ
        const = (block.attn.out_proj.bias @ G) / (N * H) * scale + part_beta  # [B, d]: bias + β shares
        const = const.repeat_interleave(N, dim=0)  # [B·N, d]
        torch.baddbmm(const, rearrange(weighted, "b h n k -> h (b n) k"), head_readouts(block, G), out=store[l])
    attn = rearrange(store, "l h (b n) d -> b l n h d", b=B)  # [B, L, N, H, d] (a view, no copy)
    mlp_terms = torch.stack([trace.residuals[0][:, 0]] + [m[:, 0] for m in trace.mlp_out], dim=1)  # [B, L+1, D]
    mlp = mlp_terms @ G * scale[:, :, None] + part_beta[:, None]  # [B, L + 1, d]
    embedding = trace.embedding / norm
    return Decomposition(attn, mlp, embedding)


@dataclass
class HeadContributions:
    """Token-summed direct contributions for a whole dataset (what TextSpan and mean-ablation need).

    Taught in: notebook 05, "Mean-ablation".
    """
    heads: torch.Tensor  # [N_img, L, H, d]: each head, summed over source tokens
    cls: torch.Tensor  # [N_img, L, d]: each layer's CLS-to-CLS term (source token = CLS), summed over heads
    mlp: torch.Tensor  # [N_img, L + 1, d]: embedding term, then each block's MLP at CLS
    labels: torch.Tensor  # [N_img]

    def total(self) -> torch.Tensor:
        """[N_img, d]: the image embeddings (unit-norm if collected with normalize=True)."""
        return self.heads.float().sum(dim=(1, 2)) + self.mlp.float().sum(dim=1)


@torch.no_grad()
def head_contributions(model, data, preprocess=None, batch_size: int = 16, normalize: bool = True,
                       fp16: bool = False, num_workers: int = 0, progress: bool = True) -> HeadContributions:
    """Stream `data` through the model, keeping only token-summed per-head outputs and the MLP terms.

    `data` is a dataset of (PIL image, label) with `preprocess`, or any iterable of (images [B,3,R,R], labels [B])
    batches (e.g. a DataLoader). Per-token tensors exist for one block of one batch at a time (the forward pass
    needs them anyway): each head's CLS row is folded into its values before anything is projected.
    Default `normalize=True` is the paper's convention (see the module docstring).

    Taught in: notebook 05, "Mean-ablation"; notebook 06, "How much do the words keep?".
    """
    visual = getattr(model, "visual", model)
    device = next(model.parameters()).device
    if preprocess is not None:
        data = DataLoader(data, batch_size=batch_size, num_workers=num_workers, collate_fn=Collate(preprocess))
    G, beta = folded_readout(visual)
    readouts = [head_readouts(block, G) for block in visual.transformer.resblocks]  # L x [H, d_h, d]
    out_bias = [block.attn.out_proj.bias @ G for block in visual.transformer.resblocks]  # L x [d]
    L, H, N = len(readouts), readouts[0].shape[0], visual.positional_embedding.shape[0]
    store = torch.float16 if fp16 else torch.float32
    dataset = getattr(data, "dataset", None)
    total = len(dataset) if dataset is not None else None  # known: preallocate, so the result is never copied
    result, chunks, filled = None, [], 0
    for images, labels in tqdm(data, desc="head contributions", disable=not progress):
        images = images.to(device)
        B = images.shape[0]
        pooled, self_terms, mlp_terms = [], [], []  # small per-layer pieces; nothing per-token is kept
        for l, (x_in, probs, v, _, mlp_out, x) in enumerate(run_blocks(visual, images, cls_only=True)):
            if l == 0:
                mlp_terms.append(x_in[:, 0])  # the embedding term: CLS after ln_pre
            pooled.append(torch.einsum("bhn,bhnk->bhk", probs[:, :, 0], v))  # [B, H, d_h]: Σ_j p[CLS, j] v_j
            self_terms.append(probs[:, :, 0, 0, None] * v[:, :, 0])  # [B, H, d_h]: the j = CLS term alone
            mlp_terms.append(mlp_out[:, 0])
        embedding = visual.ln_post(x[:, 0]) @ visual.proj  # [B, d]
        scale, part_beta, _ = _readout_scales(visual, x[:, 0], embedding, beta, L * N * H + L + 1, normalize)
        heads = torch.stack([torch.einsum("bhk,hkd->bhd", p, M) + b / H for p, M, b in zip(pooled, readouts, out_bias)], 1)
        heads = heads * scale[:, :, None, None] + N * part_beta[:, None, None]  # [B, L, H, d]
        cls = torch.stack([torch.einsum("bhk,hkd->bd", t, M) + b / N for t, M, b in zip(self_terms, readouts, out_bias)], 1)
        cls = cls * scale[:, :, None] + H * part_beta[:, None]  # [B, L, d]
        mlp = torch.stack(mlp_terms, dim=1) @ G * scale[:, :, None] + part_beta[:, None]  # [B, L + 1, d]
        batch = (heads.to(store).cpu(), cls.to(store).cpu(), mlp.to(store).cpu(), torch.as_tensor(labels).cpu())
        del x_in, probs, v, mlp_out, x, pooled, self_terms, mlp_terms, images  # free this batch before the next
        if total is None:
            chunks.append(batch)
            continue
        if result is None:
            result = [torch.empty((total,) + t.shape[1:], dtype=t.dtype) for t in batch]
        for whole, part in zip(result, batch):
            whole[filled: filled + B] = part
        filled += B
    if total is None:
        result = [torch.cat(parts) for parts in zip(*chunks)]
    return HeadContributions(*result)
