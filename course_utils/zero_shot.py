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


class _Collate:
    """Turn a list of (PIL image, label) into a preprocessed batch (a class, so DataLoader workers can pickle it)."""

    def __init__(self, preprocess):
        self.preprocess = preprocess

    def __call__(self, batch):
        images = torch.stack([self.preprocess(image) for image, _ in batch])  # [B, 3, R, R]
        return images, torch.tensor([label for _, label in batch])


@torch.inference_mode()
def evaluate_zero_shot(model, dataset, classifier: torch.Tensor, preprocess, batch_size: int = 64,
                       indices=None, num_workers: int = 0, progress: bool = True) -> dict:
    """Top-1/top-5 accuracy of `model` on `dataset` (PIL images) against class embeddings `classifier` [C, d].

    The text side is encoded once (the classifier); images go through in batches. `indices` evaluates a subset
    (e.g. notebook 03's FAST mode). Returns top1, top5, n, and the predictions and labels for error analysis.
    """
    from torch.utils.data import DataLoader, Subset
    from tqdm.auto import tqdm

    if indices is not None:
        bad = [i for i in indices if not 0 <= i < len(dataset)]
        if bad:
            raise IndexError(f"evaluate_zero_shot: index {bad[0]} is out of range for a dataset of {len(dataset)} images.")
        dataset = Subset(dataset, list(indices))
    device = next(model.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=_Collate(preprocess))
    top5_all, labels_all = [], []
    for images, labels in tqdm(loader, desc="zero-shot", disable=not progress):
        emb = F.normalize(model.encode_image(images.to(device)).float(), dim=-1)  # [B, d]
        top5_all.append((emb @ classifier.T).topk(min(5, len(classifier)), dim=-1).indices.cpu())  # [B, 5]
        labels_all.append(labels)
    top5, labels = torch.cat(top5_all), torch.cat(labels_all)
    return dict(top1=(top5[:, 0] == labels).float().mean().item(), top5=(top5 == labels[:, None]).any(-1).float().mean().item(),
                n=len(labels), predictions=top5[:, 0], labels=labels)
