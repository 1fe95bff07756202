"""CLIP's contrastive objective (notebook 02): one similarity matrix, read along both axes.

    similarity_logits   [B_img, B_txt] cosine similarities times exp(logit_scale)
    clip_loss           symmetric InfoNCE: image i picks caption i, caption i picks image i
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def similarity_logits(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """[B_img, B_txt] cosine similarities times the learned inverse temperature exp(logit_scale).

    Taught in: notebook 02, "The similarity matrix".
    """
    return logit_scale.exp() * F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T


def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: image i should pick caption i among the batch, and caption i should pick image i.

    Taught in: notebook 02, "The symmetric contrastive loss (InfoNCE)".
    """
    logits = similarity_logits(image_emb, text_emb, logit_scale)  # [B, B]
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
