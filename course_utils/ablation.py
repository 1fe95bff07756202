"""Mean-ablation: which parts of the decomposition does zero-shot accuracy need?

Replace chosen parts of every image's embedding by their average over the dataset, then measure accuracy
again. A part whose replacement costs nothing carries no image-specific information *directly* to the output.
Works on a `HeadContributions` (token-summed per-head outputs, CLS-to-CLS terms and MLP terms).
"""
from __future__ import annotations

import torch

from .zero_shot import accuracy


def mean_ablated_sum(parts: torch.Tensor, ablate: torch.Tensor) -> torch.Tensor:
    """parts [N, P, d] (P parts per image), ablate [P] bool -> [N, d]: the sum, with ablated parts replaced by
    their mean over the N images.

    Taught in: notebook 05, "Mean-ablation".
    """
    means = parts.mean(dim=0, keepdim=True).expand_as(parts)  # [N, P, d]
    return torch.where(ablate[None, :, None], means, parts).sum(dim=1)


def ablated_embeddings(c, attn_layers=(), heads=(), mlp_terms=(), cls_layers=()) -> torch.Tensor:
    """[N, d] embeddings after mean-ablating:
    attn_layers: whole attention layers l;  heads: (l, h) pairs;  mlp_terms: indices into c.mlp
    (0 = the embedding term, l + 1 = block l's MLP);  cls_layers: layers whose CLS-to-CLS term is ablated.

    Used by: notebook 05, "Mean-ablation"; notebook 06, "How much do the words keep?" (through mean_ablate).
    """
    L, H = c.heads.shape[1:3]
    bad = [l for l in list(attn_layers) + list(cls_layers) + [l for l, _ in heads] if not 0 <= l < L]
    bad += [m - 1 for m in mlp_terms if not 0 <= m <= L]
    if bad or any(not 0 <= h < H for _, h in heads):
        raise IndexError(f"ablation: the model has {L} layers (0..{L - 1}) with {H} heads and {L + 1} MLP terms "
                         f"(0 = embedding); got attn_layers={list(attn_layers)}, heads={list(heads)}, "
                         f"mlp_terms={list(mlp_terms)}, cls_layers={list(cls_layers)}.")
    total = c.total()

    def swap(part: torch.Tensor) -> torch.Tensor:  # [N, d]: replace this part by its dataset mean
        part = part.float()
        return part.mean(dim=0, keepdim=True) - part

    for l in attn_layers:
        total = total + swap(c.heads[:, l].sum(dim=1))
    for l, h in heads:
        total = total + swap(c.heads[:, l, h])
    for m in mlp_terms:
        total = total + swap(c.mlp[:, m])
    for l in cls_layers:
        total = total + swap(c.cls[:, l])
    return total


def mean_ablate(c, classifier: torch.Tensor, **parts) -> float:
    """Zero-shot top-1 accuracy after mean-ablating `parts` (see `ablated_embeddings`).

    Taught in: notebook 05, "Mean-ablation"; notebook 06, "How much do the words keep?".
    """
    embeddings = ablated_embeddings(c, **parts)  # on c's device (the CPU, from head_contributions)
    return accuracy(embeddings, classifier.to(embeddings.device), c.labels)


def cumulative_layer_ablation(c, classifier: torch.Tensor) -> list[float]:
    """Accuracy with attention layers 0..k-1 mean-ablated, for k = 0..L (the paper's layer-by-layer curve).

    Taught in: notebook 05, "Mean-ablation".
    """
    L = c.heads.shape[1]
    return [mean_ablate(c, classifier, attn_layers=range(k)) for k in range(L + 1)]
