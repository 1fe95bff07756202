"""Exercise cases: every notebook's exercises, registered with the checking engine in notebook order (01 ... 09).

Each exercise names its reference solution, a callable that builds its input cases (lazily and
deterministically, on the first check), and a hint shown when a learner's answer is wrong.
Learners never import this module: `course_utils.checks` imports it so that check() knows every exercise.
"""
from __future__ import annotations

import math

import torch

from .ablation import mean_ablated_sum
from .by_hand import (causal_mask, cross_attention, layer_norm, positional_encoding, scaled_dot_product_attention,
                      softmax)
from .checker import exercise
from .compare_maps import rollout_from_probs
from .contrastive import clip_loss, similarity_logits
from .decompose import fold_ln_proj, head_token_terms, linearised_layer_norm
from .heatmaps import patch_scores, relative_to_prompts, to_grid
from .inside_vit import cls_attention_maps, multihead_self_attention, patchify, quick_gelu, residual_block
from .legrad import min_max, relevance_from_grad, token_mean_embedding
from .metrics import mean_iou
from .roles_at_work import group_accuracy, group_average, mean_ablate_heads, precision_at_k
from .textspan import greedy_indices, projection_variance, remove_direction, restrict_to_top_directions
from .zero_shot import confusion_matrix, ensemble_embeddings, per_group_accuracy, topk_accuracy
from .zero_shot import predict as zero_shot_predict
from .zero_shot import probabilities as zero_shot_probabilities


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rand(*shape, seed: int) -> torch.Tensor:
    return torch.rand(*shape, generator=_gen(seed))


# ---- notebook 01: the transformer by hand ------------------------------------------------------------
exercise("positional_encoding", positional_encoding, lambda: [(7, 6), (4, 8), (50, 16), (3, 5)])
exercise(
    "softmax",
    softmax,
    lambda: [(_rand(4, 6, seed=1),), (_rand(3, 5, seed=2) * 1000,), (torch.tensor([[1.0, 2.0, 3.0]]),)],
    notes="the second case has entries near 1000: subtract the row max before exp()",
)
exercise("causal_mask", causal_mask, lambda: [(1,), (4,), (7,)])
exercise(
    "layer_norm",
    layer_norm,
    lambda: [
        (_rand(7, 6, seed=3), torch.ones(6), torch.zeros(6)),
        (_rand(4, 6, seed=4) * 10, _rand(6, seed=5), _rand(6, seed=6)),
    ],
)
exercise(
    "scaled_dot_product_attention",
    scaled_dot_product_attention,
    lambda: [
        (_rand(7, 4, seed=7), _rand(7, 4, seed=8), _rand(7, 4, seed=9)),
        (_rand(3, 8, seed=10), _rand(5, 8, seed=11), _rand(5, 8, seed=12)),  # 3 queries, 5 keys, d_k = 8
    ],
)
exercise(
    "cross_attention",
    cross_attention,
    lambda: [
        # decoder stream of 4 tokens, encoder output of 7 tokens: the output must have 4 rows
        (_rand(4, 6, seed=13), _rand(7, 6, seed=14), _rand(6, 6, seed=15), _rand(6, 6, seed=16), _rand(6, 6, seed=17)),
    ],
    notes="queries come from the decoder; keys and values from the encoder",
)


# ---- notebook 02: CLIP's contrastive objective ---------------------------------------------------------
_LOG_INV_T = math.log(1 / 0.07)  # CLIP's initial temperature, 0.07
exercise(
    "similarity_logits",
    similarity_logits,
    lambda: [(_rand(4, 8, seed=20) - 0.5, _rand(4, 8, seed=21) - 0.5, torch.tensor(_LOG_INV_T)),
             (_rand(3, 5, seed=22) * 10, _rand(6, 5, seed=23), torch.tensor(0.0))],  # 3 images vs 6 texts
    notes="normalise both sides, then multiply by exp(logit_scale), not by logit_scale itself",
)
exercise(
    "clip_loss",
    clip_loss,
    lambda: [(_rand(8, 16, seed=24) - 0.5, _rand(8, 16, seed=25) - 0.5, torch.tensor(_LOG_INV_T)),
             (_rand(5, 4, seed=26) - 0.5, _rand(5, 4, seed=27) - 0.5, torch.tensor(1.0))],
    notes="average the image->text and the text->image cross-entropies; the targets are 0..B-1",
)
exercise(
    "zero_shot_predict",
    zero_shot_predict,
    lambda: [(_rand(6, 8, seed=28) - 0.5, _rand(10, 8, seed=29) - 0.5),
             (torch.tensor([[3.0, 0.1], [0.1, 0.2]]), torch.tensor([[1.0, 0.0], [0.0, 1.0], [10.0, 10.0]]))],
    notes="compare cosines, not raw dot products: a long class vector must not win just by being long",
)
exercise(
    "topk_accuracy",
    topk_accuracy,
    lambda: [(_rand(20, 10, seed=30), torch.arange(20) % 10, 1), (_rand(20, 10, seed=30), torch.arange(20) % 10, 3)],
)


# ---- notebook 03: zero-shot CIFAR-100 ------------------------------------------------------------------
exercise(
    "zero_shot_probabilities",
    zero_shot_probabilities,
    lambda: [(_rand(4, 8, seed=40) - 0.5, _rand(10, 8, seed=41) - 0.5), (_rand(2, 3, seed=42) * 5, _rand(5, 3, seed=43))],
    notes="cosine similarity (normalise both sides), times 100, then softmax over the classes (the last axis)",
)
exercise(
    "ensemble_embeddings",
    ensemble_embeddings,
    lambda: [(_rand(5, 3, 8, seed=44) - 0.5,), (_rand(2, 18, 4, seed=45) * torch.arange(1.0, 19.0)[None, :, None],)],
    notes="normalise each prompt embedding first (or long prompts dominate), average over templates, normalise again",
)
exercise(
    "per_group_accuracy",
    per_group_accuracy,
    lambda: [(torch.tensor([0, 1, 2, 3, 3, 0]), torch.tensor([0, 1, 3, 2, 3, 1]), torch.tensor([0, 0, 1, 1])),
             ((torch.arange(40) * 7) % 10, torch.arange(40) % 10, torch.arange(10) // 5)],
    notes="an image's group is the group of its TRUE label; result [G] = correct / total per group",
)
exercise(
    "confusion_matrix",
    confusion_matrix,
    lambda: [(torch.tensor([0, 1, 2, 2, 0]), torch.tensor([0, 2, 2, 1, 0]), 3), ((torch.arange(30) * 3) % 7, torch.arange(30) % 7, 7)],
    notes="rows are the true class, columns the predicted class; entries are counts",
)


# ---- notebook 04: inside CLIP's ViT ---------------------------------------------------------------------
def _block_case(width: int, seed: int) -> dict:
    g = _gen(seed)
    def r(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale
    return {"ln_1.weight": 1 + r(width), "ln_1.bias": r(width), "attn.in_proj_weight": r(3 * width, width),
            "attn.in_proj_bias": r(3 * width), "attn.out_proj.weight": r(width, width), "attn.out_proj.bias": r(width),
            "ln_2.weight": 1 + r(width), "ln_2.bias": r(width), "mlp.c_fc.weight": r(4 * width, width),
            "mlp.c_fc.bias": r(4 * width), "mlp.c_proj.weight": r(width, 4 * width), "mlp.c_proj.bias": r(width)}


exercise(
    "patchify",
    patchify,
    lambda: [(_rand(2, 3, 16, 16, seed=50), 8), (_rand(1, 3, 12, 12, seed=51), 4)],
    notes="patches in reading order (row by row); inside a patch: channel, then row, then column",
)
exercise("quick_gelu", quick_gelu, lambda: [(torch.linspace(-6, 6, 25),), (_rand(3, 4, seed=52) * 4 - 2,)])
exercise(
    "multihead_self_attention",
    multihead_self_attention,
    lambda: [(_rand(2, 5, 8, seed=53) - 0.5, _rand(24, 8, seed=54) - 0.5, _rand(24, seed=55) - 0.5,
              _rand(8, 8, seed=56) - 0.5, _rand(8, seed=57) - 0.5, 2)],
    notes="in_proj_weight stacks W_q, W_k, W_v as rows: chunk into 3 along the output axis; scale by sqrt(d_head)",
)
exercise(
    "residual_block",
    residual_block,
    lambda: [(_rand(2, 5, 8, seed=58) - 0.5, _block_case(8, 59), 2), (_rand(1, 3, 12, seed=60) * 2, _block_case(12, 61), 3)],
    notes="pre-norm: x + attn(ln_1(x)), then x + mlp(ln_2(x)); LayerNorm eps is 1e-5; QuickGELU, not GELU",
)
exercise(
    "cls_attention_maps",
    cls_attention_maps,
    lambda: [(torch.softmax(_rand(2, 3, 10, 10, seed=62) * 4, -1),), (torch.softmax(_rand(1, 2, 50, 50, seed=63), -1),)],
    notes="row 0 is the CLS query; drop the CLS key (column 0); reshape the rest to the square grid",
)


# ---- notebook 05: decomposing CLIP ------------------------------------------------------------------------
exercise(
    "linearised_layer_norm",
    linearised_layer_norm,
    lambda: [(_rand(2, 5, 8, seed=70) - 0.5, _rand(2, 8, seed=71) * 3, _rand(8, seed=72) + 0.5),
             (_rand(1, 3, 6, seed=73) * 10, _rand(1, 6, seed=74) - 0.5, torch.ones(6))],
    notes="centre each PART over its own D entries; divide by σ of the full RESIDUAL (biased variance, eps 1e-5); times γ",
)
exercise(
    "head_token_terms",
    head_token_terms,
    lambda: [(torch.softmax(_rand(2, 3, 5, seed=75) * 3, -1), _rand(2, 3, 5, 4, seed=76) - 0.5, _rand(12, 12, seed=77) - 0.5),
             (torch.softmax(_rand(1, 2, 4, seed=78), -1), _rand(1, 2, 4, 3, seed=79), _rand(6, 6, seed=80))],
    notes="head h uses columns h·d_h:(h+1)·d_h of out_proj_weight (its slice of the concatenated heads); output [B, N, H, D]",
)
exercise(
    "fold_ln_proj",
    fold_ln_proj,
    lambda: [(_rand(8, seed=81) + 0.5, _rand(8, 4, seed=82) - 0.5), (torch.ones(5), _rand(5, 3, seed=83))],
    notes="G = γ[:, None] * proj, then subtract the mean over the D rows: that is what centring p does",
)
exercise(
    "mean_ablated_sum",
    mean_ablated_sum,
    lambda: [(_rand(6, 4, 3, seed=84), torch.tensor([True, False, False, True])), (_rand(5, 2, 2, seed=85), torch.tensor([False, False]))],
    notes="the mean is over images (dim 0), one mean per part; then sum over parts",
)


# ---- notebook 06: TextSpan ---------------------------------------------------------------------------------
def _planted_head(seed: int):
    """Head outputs varying along 3 of 12 unit texts (strengths 3, 2, 1): a case with a clear greedy order."""
    g = _gen(seed)
    texts = torch.nn.functional.normalize(torch.randn(12, 8, generator=g), dim=-1)
    coeff = torch.randn(200, 3, generator=g) * torch.tensor([3.0, 2.0, 1.0])
    return coeff @ texts[[4, 9, 1]] + 0.05 * torch.randn(200, 8, generator=g) + 2.0, texts


exercise(
    "restrict_to_top_directions",
    restrict_to_top_directions,
    lambda: [(_rand(5, 6, seed=86) - 0.5, _rand(40, 6, seed=87) * torch.tensor([5.0, 3, 1, 0.5, 0.2, 0.1]), 2),
             (lambda outputs, texts: (texts, outputs, 3))(*_planted_head(88))],
    notes="SVD of the outputs as they are (no centring, as in the authors' code); torch.linalg.svd(...).Vh[:rank] are "
          "the top directions; project with basis.T @ basis",
)
exercise(
    "projection_variance",
    projection_variance,
    lambda: [(_rand(30, 4, seed=89), _rand(7, 4, seed=90) - 0.5)],
    notes="dot every output with every text ([K, M]), then torch's .var over the images (dim 0, unbiased default)",
)
exercise(
    "remove_direction",
    remove_direction,
    lambda: [(_rand(5, 4, seed=91), _rand(4, seed=92) * 3), (_rand(4, seed=93), torch.tensor([0.0, 2.0, 0.0, 0.0]))],
    notes="normalise the direction first; subtract (x · u) u",
)
exercise(
    "textspan_greedy",
    greedy_indices,
    lambda: [(*_planted_head(94), 3, 4), (*_planted_head(95), 2, 8)],
    notes="normalise texts, restrict them with the uncentred outputs, centre the outputs, then repeat: pick argmax "
          "variance, remove its direction from BOTH outputs and texts",
)


# ---- notebook 07: spatial heatmaps ---------------------------------------------------------------------------
def _masks(seed: int, shape=(6, 7)):
    g = _gen(seed)
    return torch.rand(*shape, generator=g) > 0.5, torch.rand(*shape, generator=g) > 0.6


exercise(
    "patch_scores",
    patch_scores,
    lambda: [(_rand(1, 3, 5, 2, 4, seed=100) - 0.5, _rand(3, 4, seed=101)), (_rand(2, 2, 10, 3, 6, seed=102), _rand(1, 6, seed=103))],
    notes="sum over layers (dim 1) and heads (dim 3), drop source token 0 (CLS), @ texts.T, then put prompts before patches",
)
exercise(
    "to_grid",
    to_grid,
    lambda: [(torch.arange(2 * 3 * 16.0).reshape(2, 3, 16),), (torch.arange(49.0).reshape(1, 1, 49),)],
    notes="patches are in reading order: rearrange '... (gh gw) -> ... gh gw' with gh = sqrt(number of patches)",
)
exercise(
    "relative_to_prompts",
    relative_to_prompts,
    lambda: [(_rand(4, 5, 5, seed=104),), (_rand(2, 3, 4, 4, seed=105),)],
    notes="the prompts are dim -3 (maps are [..., P, H, W]); keepdim so the mean broadcasts back",
)
exercise(
    "mean_iou",
    mean_iou,
    lambda: [_masks(106), _masks(107, (8, 8)), (torch.zeros(3, 3, dtype=torch.bool), torch.zeros(3, 3, dtype=torch.bool))],
    notes="IoU of the foreground (pred & mask) / (pred | mask), IoU of the background likewise, then their mean; "
          "an empty union counts as IoU 1",
)


# ---- notebook 08: LeGrad vs TextSpan --------------------------------------------------------------------------
exercise(
    "token_mean_embedding",
    token_mean_embedding,
    lambda: [(_rand(1, 5, 8, seed=110) * 3, _rand(8, seed=111) + 0.5, _rand(8, seed=112) - 0.5, _rand(8, 4, seed=113) - 0.5),
             (_rand(2, 3, 6, seed=114), torch.ones(6), torch.zeros(6), _rand(6, 6, seed=115))],
    notes="mean over ALL tokens (dim 1, CLS included), LayerNorm with eps 1e-5 (F.layer_norm), @ proj, unit length",
)
exercise(
    "relevance_from_grad",
    relevance_from_grad,
    lambda: [(_rand(2, 3, 5, 5, seed=116) - 0.5,), (_rand(1, 2, 10, 10, seed=117) - 0.6,)],
    notes="ReLU first, then the mean over heads (dim 1) AND query rows (dim 2); drop key 0 (CLS)",
)
exercise(
    "min_max",
    min_max,
    lambda: [(_rand(3, 4, 4, seed=118) * 5 - 1,), (_rand(2, 6, seed=119),)],
    notes="one minimum and one maximum per prompt (over everything but dim 0)",
)
exercise(
    "rollout_from_probs",
    rollout_from_probs,
    lambda: [(torch.softmax(_rand(3, 2, 5, 5, seed=120) * 3, -1),), (torch.softmax(_rand(4, 3, 10, 10, seed=121), -1),)],
    notes="per block: 0.5 * mean over heads + 0.5 * I, rows renormalised; joint = A_l @ joint (later blocks on the left); "
          "return row 0 without column 0",
)


# ---- notebook 09: head roles at work ---------------------------------------------------------------------------
exercise(
    "group_accuracy",
    group_accuracy,
    lambda: [(_rand(12, seed=130) > 0.4, torch.arange(12) % 4, 4),
             (_rand(30, seed=131) > 0.7, (_rand(30, seed=132) * 6).long().clamp(max=5).sort().values.roll(1), 6)],
    notes="count the hits and the images of each group (index_add_ or a loop over groups), then divide",
)
exercise(
    "group_average",
    group_average,
    lambda: [(_rand(20, seed=133), 0.95), (_rand(6, seed=134), 0.5), (torch.tensor([1.0, 0.0]), 0.9)],
    notes="entries come in (typical, atypical) pairs per class: weight them share and 1 - share, then average the classes",
)
exercise(
    "mean_ablate_heads",
    mean_ablate_heads,
    lambda: [(_rand(5, 2, 3, 4, seed=135), [(1, 2)]), (_rand(7, 3, 2, 6, seed=136), [(0, 0), (2, 1), (1, 1)]),
             (_rand(3, 1, 2, 2, seed=137), [])],
    notes="work on a copy (clone); the mean is over the images (dim 0) and replaces that head in every image",
)
exercise(
    "precision_at_k",
    precision_at_k,
    lambda: [(_rand(12, 5, seed=138) - 0.5, torch.arange(12) % 3, 3), (_rand(20, 8, seed=139) - 0.5, torch.arange(20) % 4, 5)],
    notes="cosine similarity (normalise first); the query must not retrieve itself: set the diagonal to -inf before topk",
)
