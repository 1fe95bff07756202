"""Zero-shot classification: compare an image embedding with one text embedding per class."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def predict(image_emb: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
    """[B, d] images, [C, d] class texts -> [B] index of the most similar class (cosine)."""
    return (F.normalize(image_emb, dim=-1) @ F.normalize(class_emb, dim=-1).T).argmax(dim=-1)


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Share of rows whose true label is among the k highest logits. logits [B, C], labels [B] -> scalar."""
    if not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"topk_accuracy: k={k} must be between 1 and the number of classes ({logits.shape[-1]}).")
    top = logits.topk(k, dim=-1).indices  # [B, k]
    return (top == labels[:, None]).any(dim=-1).float().mean()
