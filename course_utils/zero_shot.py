"""Zero-shot classification: compare an image embedding with one text embedding per class.

    PROMPT_TEMPLATE, CIFAR100_TEMPLATES     the course's one prompt, and the CLIP paper's 18
    encode_texts, zero_shot_classifier     texts -> embeddings; class names -> one unit vector per class
    predict, probabilities, topk_accuracy, accuracy     the scores, and the one top-k formula
    evaluate_zero_shot, classify           a whole dataset; one image
"""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from .data import Collate
from .models import clip


def predict(image_emb: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
    """[B, d] images, [C, d] class texts -> [B] index of the most similar class (cosine).

    Taught in: notebook 02, "Zero-shot classification".
    """
    return cosine_logits(image_emb, class_emb).argmax(dim=-1)


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Share of rows whose true label is among the k highest logits. logits [B, C], labels [B] -> scalar.

    The package's one top-k formula: `accuracy`, `evaluate_zero_shot`, ToyCLIP's evaluation, mean-ablation and
    LeGrad's readout test all call it.
    Taught in: notebook 02, "Zero-shot classification".
    """
    if not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"topk_accuracy: k={k} must be between 1 and the number of classes ({logits.shape[-1]}).")
    top = logits.topk(k, dim=-1).indices  # [B, k]
    return (top == labels.to(top.device)[:, None]).any(dim=-1).float().mean()


def cosine_logits(image_emb: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
    """[B, d] images, [C, d] classes -> [B, C] cosine similarities (both sides normalised, in float32).

    Taught in: notebook 02, "Zero-shot classification".
    """
    return F.normalize(image_emb.float(), dim=-1) @ F.normalize(class_emb.float(), dim=-1).T


def accuracy(image_emb: torch.Tensor, class_emb: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Zero-shot top-k accuracy of image embeddings [N, d] against class embeddings [C, d], as a float.

    Taught in: notebook 06, "How much do the words keep?".
    """
    return topk_accuracy(cosine_logits(image_emb, class_emb), labels, k).item()


# The 18 CIFAR-100 templates of the CLIP repository's data/prompts.md (used for the paper's ensemble).
CIFAR100_TEMPLATES = (
    "a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.",
    "a low contrast photo of a {}.", "a high contrast photo of a {}.", "a bad photo of a {}.",
    "a good photo of a {}.", "a photo of a small {}.", "a photo of a big {}.",
    "a photo of the {}.", "a blurry photo of the {}.", "a black and white photo of the {}.",
    "a low contrast photo of the {}.", "a high contrast photo of the {}.", "a bad photo of the {}.",
    "a good photo of the {}.", "a photo of the small {}.", "a photo of the big {}.",
)
# The course's one prompt, for every model and dataset (notebooks 02-09, ToyCLIP's evaluation, the heatmaps).
PROMPT_TEMPLATE = "a photo of a {}."
SINGLE_TEMPLATE = (PROMPT_TEMPLATE,)  # as a list of templates, for zero_shot_classifier


def readable(classname: str) -> str:
    """CIFAR-style class names use underscores: "lawn_mower" -> "lawn mower".

    Taught in: notebook 03, "The course notes' zero-shot cells, one by one".
    """
    return classname.replace("_", " ")


@torch.inference_mode()
def zero_shot_classifier(model, classnames, templates=SINGLE_TEMPLATE, batch_size: int = 256) -> torch.Tensor:
    """One unit-norm text embedding per class: the mean over templates of the normalised prompt embeddings.

    Returns [C, d]. With several templates this is CLIP's embedding-mean prompt ensemble.
    Taught in: notebook 03, "The whole test set".
    """
    if len(classnames) == 0:
        raise ValueError("zero_shot_classifier: the list of class names is empty; pass at least one class.")
    if len(templates) == 0 or any("{}" not in t for t in templates):
        raise ValueError("zero_shot_classifier: every template needs a '{}' where the class name goes.")
    prompts = [t.format(readable(c)) for c in classnames for t in templates]  # class-major: [C * T]
    emb = encode_texts(model, prompts, batch_size)  # [C * T, d]
    return ensemble_embeddings(emb.view(len(classnames), len(templates), -1))  # [C, d]


@torch.inference_mode()
def encode_texts(model, texts, batch_size: int = 256) -> torch.Tensor:
    """Tokenise and encode texts in batches -> [M, d] float32 (not normalised), on the model's device.

    Each batch runs only as many positions as its longest text needs (`encode_text_short`): the same embeddings as
    `model.encode_text` on all 77, several times faster for short prompts.
    Used by: zero_shot_classifier; notebook 07, "Photos (real mode) and your own prompts"; notebook 06's set-up.
    """
    if len(texts) == 0:
        raise ValueError("encode_texts: the list of texts is empty; pass at least one.")
    try:
        tokens = clip.tokenize(list(texts))
    except RuntimeError as err:  # clip says "Input ... is too long for context length 77"
        raise ValueError(f"a prompt is longer than CLIP's 77 tokens ({err}). Shorten it.") from err
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(tokens), batch_size):
        batch = tokens[i: i + batch_size]
        used = int(batch.argmax(dim=-1).max()) + 1  # the end-of-text token has the largest id: the last one needed
        out.append(encode_text_short(model, batch[:, :used].to(device)).float())
    return torch.cat(out)


def encode_text_short(model, tokens: torch.Tensor) -> torch.Tensor:
    """model.encode_text on the first n positions only (tokens [B, n]): the same result for texts of at most n tokens.

    Text attention is causal, so the end-of-text position, which is all encode_text reads, never sees the padding
    after it: running those positions only costs time.
    Used by: encode_texts and toyclip.train.
    """
    n = tokens.shape[1]
    x = (model.token_embedding(tokens) + model.positional_embedding[:n]).to(model.dtype)  # [B, n, width]
    mask = model.build_attention_mask()[:n, :n].to(x.device)
    blocks = model.transformer.resblocks
    saved = [block.attn_mask for block in blocks]
    x = x.permute(1, 0, 2)  # [n, B, width]: openai's blocks take the sequence first
    try:  # the blocks read their mask from an attribute: swap it for the short one, and always put it back
        for block in blocks:
            block.attn_mask = mask
            x = block(x)
    finally:
        for block, original in zip(blocks, saved):
            block.attn_mask = original
    x = model.ln_final(x.permute(1, 0, 2))  # [B, n, width]
    return x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)] @ model.text_projection


def ensemble_embeddings(text_emb: torch.Tensor) -> torch.Tensor:
    """[C, T, d] prompt embeddings (T templates per class) -> [C, d]: normalise, mean over templates, normalise.

    Taught in: notebook 03, "The whole test set".
    """
    return F.normalize(F.normalize(text_emb, dim=-1).mean(dim=1), dim=-1)


def probabilities(image_emb: torch.Tensor, class_emb: torch.Tensor, scale: float = 100.0) -> torch.Tensor:
    """[B, d] images, [C, d] classes -> [B, C]: softmax over classes of `scale` x cosine similarity.

    100 is (about) the temperature CLIP learned: exp(logit_scale) is clamped at 100 during training.
    Taught in: notebook 03, "The course notes' zero-shot cells, one by one".
    """
    return (scale * cosine_logits(image_emb, class_emb)).softmax(dim=-1)


def per_group_accuracy(predictions: torch.Tensor, labels: torch.Tensor, group_of_class: torch.Tensor) -> torch.Tensor:
    """Top-1 accuracy within each group of classes (e.g. CIFAR-100's 20 superclasses).

    predictions, labels: [N] class indices; group_of_class: [C] group index of each class -> [G] accuracies,
    where an image belongs to the group of its *true* class. A group with no images gets NaN.
    Taught in: notebook 03, "Where does it fail?".
    """
    groups = group_of_class[labels]  # [N]
    n_groups = int(group_of_class.max()) + 1
    correct = torch.zeros(n_groups).index_add_(0, groups, (predictions == labels).float())
    total = torch.zeros(n_groups).index_add_(0, groups, torch.ones(len(labels)))
    return correct / total


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """[C, C] counts: row = true class, column = predicted class.

    Taught in: notebook 03, "Where does it fail?".
    """
    flat = labels * n_classes + predictions  # [N]: one bin per (true, predicted) pair
    return torch.bincount(flat, minlength=n_classes * n_classes).view(n_classes, n_classes)


def most_confused(confusion: torch.Tensor, k: int = 10) -> list[tuple[int, int, int]]:
    """The k largest off-diagonal entries of a confusion matrix as (true, predicted, count), largest first.

    Taught in: notebook 03, "Where does it fail?".
    """
    off = confusion.clone()
    off.fill_diagonal_(0)
    counts, flat = off.flatten().topk(k)
    n = confusion.shape[0]
    return [(int(i) // n, int(i) % n, int(c)) for c, i in zip(counts, flat) if c > 0]


def as_rgb(image) -> Image.Image:
    """Any PIL image -> RGB. Grayscale is repeated over 3 channels; transparency is composited on white.

    Used by: notebook 03, "Try it yourself" (through classify).
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(image).__name__}. "
                        "Load files with PIL.Image.open(path); wrap arrays with PIL.Image.fromarray(array).")
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


@torch.inference_mode()
def classify(model, preprocess, image, classifier: torch.Tensor, classnames, k: int = 5) -> list[tuple[str, float]]:
    """The course notes' zero-shot cell as a function: top-k (class name, probability) for one PIL image of any mode.

    Taught in: notebook 03, "Try it yourself".
    """
    if len(classnames) != len(classifier):
        raise ValueError(f"classify: {len(classnames)} class names but {len(classifier)} class embeddings.")
    device = next(model.parameters()).device
    x = preprocess(as_rgb(image)).unsqueeze(0).to(device)  # [1, 3, R, R]
    probs = probabilities(model.encode_image(x).float(), classifier)[0]  # [C]
    values, idx = probs.topk(min(k, len(classnames)))
    return [(classnames[i], v.item()) for v, i in zip(values, idx)]


def example(dataset, index: int):
    """dataset[index] with an error that says what the valid indices are.

    Taught in: notebook 03, "The course notes' zero-shot cells, one by one".
    """
    try:
        index = operator.index(index)
    except TypeError:
        raise TypeError(f"image index must be a whole number, got {index!r}.") from None
    if not 0 <= index < len(dataset):
        raise IndexError(f"image index {index!r} is out of range: this test set has {len(dataset)} images, "
                         f"so use 0 to {len(dataset) - 1}.")
    return dataset[index]


@torch.inference_mode()
def evaluate_zero_shot(model, dataset, classifier: torch.Tensor, preprocess, batch_size: int = 64,
                       indices=None, num_workers: int = 0, progress: bool = True) -> dict:
    """Top-1/top-5 accuracy of `model` on `dataset` (PIL images) against class embeddings `classifier` [C, d].

    The text side is encoded once (the classifier); images go through in batches. `indices` evaluates a subset
    (e.g. notebook 03's FAST mode). Returns top1, top5, n, the predictions and labels for error analysis, and the
    image embeddings, so another classifier can be scored on the same images without encoding them again
    (`score_embeddings`).
    Taught in: notebook 03, "The whole test set".
    """
    if indices is not None:
        bad = [i for i in indices if not 0 <= i < len(dataset)]
        if bad:
            raise IndexError(f"evaluate_zero_shot: index {bad[0]} is out of range for a dataset of {len(dataset)} images.")
        dataset = Subset(dataset, list(indices))
    device = next(model.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=Collate(preprocess))
    embeddings, labels = [], []
    for images, batch_labels in tqdm(loader, desc="zero-shot", disable=not progress):
        embeddings.append(F.normalize(model.encode_image(images.to(device)).float(), dim=-1).cpu())  # [B, d]
        labels.append(batch_labels)
    return score_embeddings(torch.cat(embeddings), torch.cat(labels), classifier)


def score_embeddings(embeddings: torch.Tensor, labels: torch.Tensor, classifier: torch.Tensor) -> dict:
    """Top-1/top-5 of image embeddings [N, d] against class embeddings [C, d]: evaluate_zero_shot's result dict.

    Taught in: notebook 03, "The whole test set".
    """
    logits = cosine_logits(embeddings, classifier.to(embeddings.device))  # [N, C]
    return dict(top1=topk_accuracy(logits, labels, 1).item(), top5=topk_accuracy(logits, labels, min(5, len(classifier))).item(),
                n=len(labels), predictions=logits.argmax(dim=-1), labels=labels, embeddings=embeddings)
