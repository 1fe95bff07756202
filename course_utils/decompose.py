"""Decomposing CLIP: the image embedding as an exact sum of direct contributions (Gandelsman et al., 2024).

The CLS residual that `ln_post` reads is a sum: the embedding term (CLS after ln_pre), plus for every block l
its MLP output at CLS and its attention output at CLS. The attention output at CLS is itself a sum over heads
h and source tokens j:

    attn_l[CLS] = Σ_h Σ_j  p_lh[CLS, j] · v_lh[j] · W_O,h  +  b_O,l

`ln_post` is not linear, but with the image's *own* mean μ and standard deviation σ it is:
    ln_post(r) = γ ⊙ (r − μ(r)) / σ(r) + β,   and r − μ(r) is linear in r.
Each layer's out-projection bias b_O is split evenly over its N tokens × H heads. What is left is a choice: who
"owns" the subtracted mean μ and the constant β. Two conventions, both exact (the parts sum to `encode_image`):

- `convention="paper"` (the default): the convention of the authors' code (`prs_hook.py` in
  yossigandelsman/clip_text_span). The residual has 2L + 1 terms (embedding, L attention layers, L MLPs); each
  takes 1/(2L+1) of the *total* mean μ and of β (an attention layer's share split again over N·H). So a part p
  maps to  ((p − μ/(2L+1)/(N·H)) ⊙ γ / σ + β/(2L+1)/(N·H)) @ proj  (without the N·H for the 2L+1 terms).
  tests/test_decompose.py checks every per-token, per-head and MLP term against fixtures made with their code.
- `convention="centred"`: every part is centred by its *own* mean, (p − mean(p)) ⊙ γ / σ @ proj, and β @ proj is
  split evenly over all L·N·H + L + 1 parts. A part's term then depends on that part alone (and the shared σ).

They differ only along γ @ proj and β @ proj (3-5% of a part's norm on a random ViT-B/16). The default is the
authors' because every figure the course compares with the paper must be computed the way the paper computed it;
notebook 05 ("Two ways to share the mean") puts the two side by side.

Folding (why this costs little more than a forward pass): γ and proj (and, centred, the centring) are one matrix
G [D, d], and W_O,h @ G is one matrix per head, [d_h, d]. Each head's value vectors go through that once, instead
of every [D] contribution going through ln_post and proj. The parts' constant shares (bias, μ, β) ride in the
same matmul as three extra columns, so the [B, L, N, H, d] result is written once.

Scale:
- unnormalised (`normalize=False`): the parts sum to `model.encode_image(images)` (norm ≈ 10-30 in real CLIP);
- normalised (`normalize=True`): every part is divided by the norm of the whole embedding, so the parts sum to
  the *unit* embedding that zero-shot classification compares with texts. The authors' code does this too.
"""
from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange, repeat
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .data import Collate
from .inside_vit import run_blocks
from .models import vit_visual


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
        return select_parts(self.attn, layers, heads)

    def tokens(self, layers=None, heads=None) -> torch.Tensor:
        """[B, N, d]: per-source-token contributions, summed over the chosen layers and heads (default all)."""
        return self.select(layers, heads).sum(dim=(1, 3))

    def heads(self) -> torch.Tensor:
        """[B, L, H, d]: each head's contribution, summed over source tokens."""
        return self.attn.sum(dim=2)

    def layers(self) -> torch.Tensor:
        """[B, L, d]: each attention layer's contribution, summed over tokens and heads."""
        return self.attn.sum(dim=(2, 3))


def select_parts(parts: torch.Tensor, layers=None, heads=None) -> torch.Tensor:
    """[B, L, N, H, ...] -> [B, L', N, H', ...]: the chosen layers and heads (an int or a list each; default all).

    Used by: Decomposition.select and heatmaps.token_maps (on text_scores' [B, L, N, H, P]).
    """
    if layers is not None:
        parts = parts[:, [layers] if isinstance(layers, int) else list(layers)]
    if heads is not None:
        parts = parts[:, :, :, [heads] if isinstance(heads, int) else list(heads)]
    return parts


def fold_ln_proj(weight: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    """G [D, d] with  (p − mean(p)) ⊙ γ @ proj = p @ G  for every p [.., D]: centring, γ and proj in one matrix.

    Taught in: notebook 05, "Folding: why this is cheap".
    """
    scaled = weight[:, None] * proj  # [D, d]: γ ⊙ proj, row by row
    return scaled - scaled.mean(dim=0, keepdim=True)  # subtracting the mean of p = subtracting the row mean of G


CONVENTIONS = ("paper", "centred")  # who owns ln_post's mean and β: see the module docstring


def check_convention(convention: str, caller: str) -> str:
    """Return `convention` if it is one of CONVENTIONS; otherwise a ValueError that names the caller and the choices.

    Used by: decompose, head_contributions, token_maps and textspan (the `convention=` argument).
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"{caller}: convention={convention!r} is not one of {CONVENTIONS}; "
                         f"'paper' follows the authors' code, 'centred' centres each part by its own mean.")
    return convention


def folded_readout(visual, convention: str = "paper") -> tuple[torch.Tensor, torch.Tensor]:
    """G [D, d], so that a part p reads out as p @ G / σ (plus its share of the constants); and β @ proj [d].

    paper: G = γ ⊙ proj (the mean is shared out separately); centred: G = fold_ln_proj(γ, proj) (centring folded in).
    Used by: decompose and head_contributions (G and β @ proj of notebook 05, "Folding: why this is cheap").
    """
    weight, proj = visual.ln_post.weight, visual.proj
    G = weight[:, None] * proj if convention == "paper" else fold_ln_proj(weight, proj)  # [D, d]
    return G, visual.ln_post.bias @ proj


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


_READOUTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # vision tower -> (key, L x [H, d_h, d])


def layer_readouts(visual, G: torch.Tensor, convention: str) -> list[torch.Tensor]:
    """L x [H, d_h, d]: head_readouts of every block, remembered per model until a weight they read changes.

    Weight-only work (7 GFLOP for ViT-B/32, about 3% of a batch-32 forward pass), so decompose, called batch after
    batch on the same weights, does it once. Editing a weight in place, or replacing it, recomputes them.
    Used by: decompose.
    """
    blocks = visual.transformer.resblocks
    read = [visual.proj, visual.ln_post.weight, visual.ln_post.bias] + [block.attn.out_proj.weight for block in blocks]
    key = (convention, G.device, G.dtype, tuple((t.data_ptr(), t._version) for t in read))
    cached = _READOUTS.get(visual)
    if cached is None or cached[0] != key:
        cached = _READOUTS[visual] = (key, [head_readouts(block, G) for block in blocks])
    return cached[1]


def _sigma(residual: torch.Tensor, eps: float) -> torch.Tensor:
    """[B, D] -> [B]: LayerNorm's σ of each row (biased variance, eps inside the root)."""
    return torch.sqrt(residual.var(dim=-1, unbiased=False) + eps)


def _part_constants(visual, G: torch.Tensor, beta: torch.Tensor, final_cls: torch.Tensor, embedding: torch.Tensor,
                    shape: tuple[int, int, int], normalize: bool, convention: str):
    """The per-image bookkeeping every part shares. final_cls [B, D], embedding [B, d], shape (L, N, H) ->
    scale [B, 1] = 1 / (σ · ‖embedding‖); per_image [B, 2] = (1 / ‖embedding‖, μ · scale) and shared [2, d], so that
    one (layer, token, head) part's share of the constants is  per_image @ shared  (two numbers per image times
    two fixed vectors, β @ proj and γ @ proj); mlp_const [B, d], one embedding/MLP term's share; norm [B, 1] (ones
    when normalize=False)."""
    L, N, H = shape
    final_cls = final_cls.float()
    sigma = _sigma(final_cls, visual.ln_post.eps)[:, None]  # [B, 1]: the image's own σ
    norm = embedding.norm(dim=-1, keepdim=True) if normalize else torch.ones_like(sigma)  # [B, 1]
    scale = 1 / (sigma * norm)
    mu = final_cls.mean(dim=-1, keepdim=True)  # [B, 1]: the image's own mean
    per_image = torch.cat([1 / norm, mu * scale], dim=1)  # [B, 2]
    if convention == "centred":  # β @ proj split evenly over every part; the centring is already inside G (no μ)
        shared = torch.stack([beta, torch.zeros_like(beta)]).float() / (L * N * H + L + 1)  # [2, d]
        return scale, per_image, shared, per_image @ shared, norm
    # paper: the 2L + 1 terms each take 1/(2L+1) of  β @ proj − μ γ/σ @ proj;  an attention layer's, over N·H
    shared = torch.stack([beta, -G.sum(dim=0)]).float() / (2 * L + 1)  # [2, d]; G.sum(0) = γ @ proj
    return scale, per_image, shared / (N * H), per_image @ shared, norm


def _direct_parts(visual, images: torch.Tensor, normalize: bool, convention: str) -> dict:
    """The forward pass and the bookkeeping that decompose and text_scores share (shapes in the comments).

    Used by: decompose and text_scores.
    """
    # Stream the blocks, keeping only what the sum needs: each block's CLS attention row and values, its MLP output
    # at CLS (the residuals, attention outputs and full MLP outputs are dropped block by block: less memory to touch).
    rows, values, mlp_cls = [], [], []
    for l, (x_in, probs, v, _, mlp_out, x) in enumerate(run_blocks(visual, images, cls_only=True, last_at_cls=True)):
        if l == 0:
            mlp_cls.append(x_in[:, 0])  # the embedding term: CLS after ln_pre
        rows.append(probs[:, :, 0])  # [B, H, N]
        values.append(v)  # [B, H, N, d_h]
        mlp_cls.append(mlp_out[:, 0])  # [B, D]
    final_cls = x[:, 0]  # [B, D]
    full_embedding = visual.ln_post(final_cls) @ visual.proj  # [B, d]: encode_image
    G, beta = folded_readout(visual, convention)
    L, (B, H, N, _) = len(values), values[0].shape
    # ln_post's 1/σ (and 1/‖embedding‖ if normalised); each part's share of the constants (μ and β, or β alone)
    scale, per_image, shared, mlp_const, norm = _part_constants(visual, G, beta, final_cls, full_embedding,
                                                               (L, N, H), normalize, convention)
    # One attention part's constant share in layer l: its bias share b_O,l G / (N·H), scaled like the part, plus
    # the μ and β shares: three numbers per image (coeffs) times three fixed vectors per layer (const_rows).
    coeffs = torch.cat([scale, per_image], dim=1)  # [B, 3]
    const_rows = [torch.cat([(block.attn.out_proj.bias @ G)[None] / (N * H), shared])  # L x [3, d]
                  for block in visual.transformer.resblocks]
    return dict(rows=rows, values=values, mlp_cls=mlp_cls, G=G, scale=scale, coeffs=coeffs, const_rows=const_rows,
                consts=[coeffs @ r for r in const_rows], mlp_const=mlp_const, embedding=full_embedding / norm,
                readouts=layer_readouts(visual, G, convention), shape=(B, L, N, H))


@torch.no_grad()
def decompose(model, images: torch.Tensor, normalize: bool = False, convention: str = "paper") -> Decomposition:
    """Every direct contribution to `model.encode_image(images)`: attention [B, L, N, H, d] and MLP [B, L+1, d].

    `normalize`: divide by ‖embedding‖ (the authors' scale). `convention`: "paper" or "centred" (module docstring).
    Taught in: notebook 05, "Folding: why this is cheap"; notebook 07, "The critical line, with the real shapes".
    """
    check_convention(convention, "decompose")
    parts = _direct_parts(vit_visual(model, "decompose"), images, normalize, convention)
    (B, L, N, H), G, scale = parts["shape"], parts["G"], parts["scale"]
    # Stored head-major so each layer is one batched matmul written in place; `attn` is a permuted view.
    store = torch.empty(L, H, B * N, G.shape[1], dtype=G.dtype, device=G.device)
    # The constants ride in the same matmul: each row's 3 extra columns (its image's coeffs) meet 3 extra rows of
    # the readout (const_rows), so the result is written once, with no separate pass to add them.
    d_h = parts["values"][0].shape[-1]
    lhs = torch.empty(H, B * N, d_h + 3, dtype=G.dtype, device=G.device)
    lhs[..., d_h:] = repeat(parts["coeffs"], "b c -> h (b n) c", h=H, n=N)
    for l, (row, v, M, extra) in enumerate(zip(parts["rows"], parts["values"], parts["readouts"], parts["const_rows"])):
        weighted = (row * scale[:, :, None])[..., None] * v  # [B, H, N, d_h]: p[CLS, j] v_j / σ
        lhs[..., :d_h] = rearrange(weighted, "b h n k -> h (b n) k")
        rhs = torch.cat([M, repeat(extra.to(M.dtype), "c d -> h c d", h=H)], dim=1)  # [H, d_h + 3, d]; M = W_O,h G
        torch.bmm(lhs, rhs, out=store[l])
    attn = rearrange(store, "l h (b n) d -> b l n h d", b=B)  # [B, L, N, H, d] (a view, no copy)
    mlp = torch.stack(parts["mlp_cls"], dim=1) @ G * scale[:, :, None] + parts["mlp_const"][:, None]  # [B, L + 1, d]
    return Decomposition(attn, mlp, parts["embedding"])


@torch.no_grad()
def unfolded_decompose(model, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """decompose(...).attn of the "paper" convention [B, L, N, H, d], computed in the authors' order of work.

    Their hook keeps every head-token term in the residual width first ([B, N, H, D] per block: head_token_terms),
    then applies the linearised ln_post and proj to each of them: the D x d projection runs L·N·H times per image.
    decompose folds W_O,h, γ and proj into one [d_h, d] matrix per head first. Same numbers, different cost.
    Used by: compare_maps.map_costs (notebook 08, "Time and memory per map").
    """
    visual = vit_visual(model, "unfolded_decompose")
    parts = _direct_parts(visual, images, normalize, "paper")
    weight, proj, scale = visual.ln_post.weight, visual.proj, parts["scale"]
    layers = []
    for row, v, block, const in zip(parts["rows"], parts["values"], visual.transformer.resblocks, parts["consts"]):
        terms = head_token_terms(row, v, block.attn.out_proj.weight)  # [B, N, H, D]: in the residual width
        layers.append((terms * weight) @ proj * scale[:, :, None, None] + const[:, None, None])  # [B, N, H, d]
    return torch.stack(layers, dim=1)  # [B, L, N, H, d]


@torch.no_grad()
def text_scores(model, images: torch.Tensor, text_embeddings: torch.Tensor, normalize: bool = False,
                convention: str = "paper") -> torch.Tensor:
    """[B, L, N, H, P]: every attention part of `decompose` read along each of P texts, without building it.

    Equals `decompose(...).attn @ text_embeddings.T` (tested), but each head's readout W_O,h G is turned towards the
    P texts first (d_h x P instead of d_h x d), so nothing of size [B, L, N, H, d] is made: a heatmap for one image
    then costs one forward pass. Texts are used as given (normalise them first for cosine-style scores).
    Used by: heatmaps.token_maps (so textspan_heatmap and the pointing games).
    """
    check_convention(convention, "text_scores")
    visual = vit_visual(model, "text_scores")
    parts = _direct_parts(visual, images, normalize, convention)
    texts = text_embeddings.to(device=parts["G"].device, dtype=parts["G"].dtype).T  # [d, P]
    scale, out = parts["scale"], []
    for row, v, M, const in zip(parts["rows"], parts["values"], parts["readouts"], parts["consts"]):
        weighted = (row * scale[:, :, None])[..., None] * v  # [B, H, N, d_h]
        per_head = torch.einsum("bhnk,hkp->bnhp", weighted, M @ texts)  # [B, N, H, P]
        out.append(per_head + (const @ texts)[:, None, None, :])  # every part carries its constant share
    return torch.stack(out, dim=1)  # [B, L, N, H, P]


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
                       fp16: bool = False, num_workers: int = 0, progress: bool = True, convention: str = "paper",
                       store=None) -> HeadContributions:
    """Stream `data` through the model, keeping only token-summed per-head outputs and the MLP terms.

    `data` is a dataset of (PIL image, label) with `preprocess`, or any iterable of (images [B,3,R,R], labels [B])
    batches (e.g. a DataLoader). Per-token tensors exist for one block of one batch at a time (the forward pass
    needs them anyway): each head's CLS row is folded into its values before anything is projected.
    Default `normalize=True` is the authors' scale; `convention` as in `decompose` (see the module docstring).
    `store`: a folder. Each batch is then appended to files there and the result is read back from disk
    (numpy memmaps, see `load_head_contributions`), so resident memory does not grow with the number of images:
    ViT-B/32 keeps 12 x 12 x 512 numbers per image, 29 GB for 50,000 images in float32.

    Taught in: notebook 05, "Mean-ablation"; notebook 06, "How much do the words keep?".
    """
    check_convention(convention, "head_contributions")
    visual = getattr(model, "visual", model)
    device = next(model.parameters()).device
    if preprocess is not None:
        data = DataLoader(data, batch_size=batch_size, num_workers=num_workers, collate_fn=Collate(preprocess))
    G, beta = folded_readout(visual, convention)
    readouts = [head_readouts(block, G) for block in visual.transformer.resblocks]  # L x [H, d_h, d]
    out_bias = [block.attn.out_proj.bias @ G for block in visual.transformer.resblocks]  # L x [d]
    L, H, N = len(readouts), readouts[0].shape[0], visual.positional_embedding.shape[0]
    dtype = torch.float16 if fp16 else torch.float32
    dataset = getattr(data, "dataset", None)
    total = len(dataset) if dataset is not None else None  # known: preallocate, so the result is never copied
    disk = _DiskStore(store) if store is not None else None
    result, chunks, filled = None, [], 0
    try:
        for images, labels in tqdm(data, desc="head contributions", disable=not progress, total=_batches(data)):
            images = images.to(device)
            B = images.shape[0]
            pooled, self_terms, mlp_terms = [], [], []  # small per-layer pieces; nothing per-token is kept
            for l, (x_in, probs, v, _, mlp_out, x) in enumerate(run_blocks(visual, images, cls_only=True, last_at_cls=True)):
                if l == 0:
                    mlp_terms.append(x_in[:, 0])  # the embedding term: CLS after ln_pre
                pooled.append(torch.einsum("bhn,bhnk->bhk", probs[:, :, 0], v))  # [B, H, d_h]: Σ_j p[CLS, j] v_j
                self_terms.append(probs[:, :, 0, 0, None] * v[:, :, 0])  # [B, H, d_h]: the j = CLS term alone
                mlp_terms.append(mlp_out[:, 0])
            embedding = visual.ln_post(x[:, 0]) @ visual.proj  # [B, d]
            scale, per_image, shared, mlp_const, _ = _part_constants(visual, G, beta, x[:, 0], embedding, (L, N, H),
                                                                     normalize, convention)
            attn_const = per_image @ shared  # [B, d]: one (token, head) part's share of μ and β
            heads = torch.stack([torch.einsum("bhk,hkd->bhd", p, M) + b / H
                                 for p, M, b in zip(pooled, readouts, out_bias)], 1)
            heads = heads * scale[:, :, None, None] + N * attn_const[:, None, None]  # [B, L, H, d]: N tokens' shares
            cls = torch.stack([torch.einsum("bhk,hkd->bd", t, M) + b / N
                               for t, M, b in zip(self_terms, readouts, out_bias)], 1)
            cls = cls * scale[:, :, None] + H * attn_const[:, None]  # [B, L, d]: H heads' shares
            mlp = torch.stack(mlp_terms, dim=1) @ G * scale[:, :, None] + mlp_const[:, None]  # [B, L + 1, d]
            batch = (heads.to(dtype).cpu(), cls.to(dtype).cpu(), mlp.to(dtype).cpu(), torch.as_tensor(labels).cpu())
            del x_in, probs, v, mlp_out, x, pooled, self_terms, mlp_terms, images  # free this batch before the next
            if disk is not None:
                disk.append(batch)
            elif total is None:
                chunks.append(batch)
            else:
                if result is None:
                    result = [torch.empty((total,) + t.shape[1:], dtype=t.dtype) for t in batch]
                for whole, part in zip(result, batch):
                    whole[filled: filled + B] = part
                filled += B
    except BaseException:  # bad input, a full disk, an interrupt: close the files (no meta.json: nothing to reopen)
        if disk is not None:
            disk.close()
        raise
    if disk is not None:
        return disk.finish()
    if total is None:
        result = [torch.cat(parts) for parts in zip(*chunks)]
    return HeadContributions(*result)


def _batches(data):
    """len(data) for a DataLoader or list of batches (the progress bar's total); None for other iterables."""
    try:
        return len(data)
    except TypeError:
        return None


FIELDS = ("heads", "cls", "mlp", "labels")  # HeadContributions' tensors, one file each in a store folder


class _DiskStore:
    """Appends each batch's tensors to one raw file per field; `finish` writes meta.json and reads them back."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "meta.json").unlink(missing_ok=True)  # an interrupted run must not reopen as a finished one
        self.files = {name: open(self.folder / f"{name}.bin", "wb") for name in FIELDS}
        self.meta = {}

    def close(self) -> None:
        for f in self.files.values():
            f.close()

    def append(self, batch) -> None:
        for name, t in zip(FIELDS, batch):
            t = t.contiguous()
            entry = self.meta.setdefault(name, dict(dtype=str(t.numpy().dtype), shape=[0, *t.shape[1:]]))
            entry["shape"][0] += t.shape[0]
            self.files[name].write(t.numpy().tobytes())  # written through: nothing accumulates in this process

    def finish(self) -> HeadContributions:
        self.close()
        if not self.meta:
            raise ValueError(f"head_contributions: the data had no batches; nothing was written to {self.folder}.")
        (self.folder / "meta.json").write_text(json.dumps(self.meta, indent=1))
        return load_head_contributions(self.folder)


def load_head_contributions(folder) -> HeadContributions:
    """The HeadContributions that `head_contributions(..., store=folder)` wrote, read lazily from disk.

    Each tensor wraps a copy-on-write numpy memmap: pages are read when used and can be dropped again by the OS,
    and changing a value never changes the file.

    Taught in: notebook 05, "Mean-ablation".
    """
    folder = Path(folder)
    meta_file = folder / "meta.json"
    if not meta_file.exists():
        raise FileNotFoundError(f"load_head_contributions: {meta_file} not found; run "
                                f"head_contributions(..., store={str(folder)!r}) first.")
    meta = json.loads(meta_file.read_text())
    tensors = [torch.from_numpy(np.memmap(folder / f"{name}.bin", dtype=meta[name]["dtype"], mode="c",
                                          shape=tuple(meta[name]["shape"]))) for name in FIELDS]
    return HeadContributions(*tensors)
