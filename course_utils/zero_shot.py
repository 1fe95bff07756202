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


# The 18 CIFAR-100 templates of the CLIP repository's data/prompts.md (used for the paper's ensemble).
CIFAR100_TEMPLATES = (
    "a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.",
    "a low contrast photo of a {}.", "a high contrast photo of a {}.", "a bad photo of a {}.",
    "a good photo of a {}.", "a photo of a small {}.", "a photo of a big {}.",
    "a photo of the {}.", "a blurry photo of the {}.", "a black and white photo of the {}.",
    "a low contrast photo of the {}.", "a high contrast photo of the {}.", "a bad photo of the {}.",
    "a good photo of the {}.", "a photo of the small {}.", "a photo of the big {}.",
)
SINGLE_TEMPLATE = ("a photo of a {}.",)


def readable(classname: str) -> str:
    """CIFAR-style class names use underscores: "lawn_mower" -> "lawn mower"."""
    return classname.replace("_", " ")


@torch.inference_mode()
def zero_shot_classifier(model, classnames, templates=SINGLE_TEMPLATE, batch_size: int = 256) -> torch.Tensor:
    """One unit-norm text embedding per class: the mean over templates of the normalised prompt embeddings.

    Returns [C, d]. With several templates this is CLIP's embedding-mean prompt ensemble.
    """
    import clip

    if len(classnames) == 0:
        raise ValueError("zero_shot_classifier: the list of class names is empty; pass at least one class.")
    if len(templates) == 0 or any("{}" not in t for t in templates):
        raise ValueError("zero_shot_classifier: every template needs a '{}' where the class name goes.")
    device = next(model.parameters()).device
    prompts = [t.format(readable(c)) for c in classnames for t in templates]  # class-major: [C * T]
    try:
        tokens = clip.tokenize(prompts)
    except RuntimeError as err:  # clip says "Input ... is too long for context length 77"
        raise ValueError(f"zero_shot_classifier: a prompt is longer than CLIP's 77 tokens ({err}). Shorten it.") from err
    emb = torch.cat([model.encode_text(tokens[i: i + batch_size].to(device)).float()
                     for i in range(0, len(tokens), batch_size)])
    emb = F.normalize(emb, dim=-1).view(len(classnames), len(templates), -1).mean(dim=1)  # [C, d]
    return F.normalize(emb, dim=-1)
