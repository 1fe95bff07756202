"""TextSpan (Gandelsman et al., ICLR 2024): describe what an attention head writes, with a few texts.

For one head we have its direct contributions over K images, C [K, d] (from `head_contributions`), and a pool
of M text embeddings T [M, d]. The greedy algorithm, as the paper describes it:

1. Keep only the text directions the head can express: project T onto the top-r right singular vectors of
   the (centred) head outputs.  T <- T V_r^T V_r.
2. Repeat m times: score every text by the variance, over images, of the head outputs projected onto it,
   var_k(C_k . t_j); pick the best text; remove its (unit) direction u from the head outputs and from every
   remaining text (C <- C - (C u) u^T, T <- T - (T u) u^T), so the next pick explains something new.

The picked directions are orthonormal, so the head's outputs projected onto their span are its *TextSpan
reconstruction*; `explained` is the share of the head's variance that span captures after each pick.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import torch

from . import pools
from . import toyworld as tw
from .decompose import head_contributions
from .models import load_toyclip
from .zero_shot import encode_texts


@dataclass
class TextSpanResult:
    """One head's TextSpan: the picked texts, the variance explained, their directions and the mean.

    Taught in: notebook 06, "The algorithm".
    """
    indices: list[int]  # the picked texts, in order (indices into the pool)
    texts: list[str]  # the same, as strings
    explained: list[float]  # share of the head's variance explained after each pick (cumulative)
    directions: torch.Tensor  # [m, d]: orthonormal directions, one per pick
    mean: torch.Tensor  # [d]: the head's mean output (kept by the reconstruction)

    def first(self, m: int) -> "TextSpanResult":
        """The result TextSpan gives with n_texts=m: greedy picks never look ahead, so it is this one's first m."""
        return TextSpanResult(self.indices[:m], self.texts[:m], self.explained[:m], self.directions[:m], self.mean)

    def reconstruct(self, outputs: torch.Tensor) -> torch.Tensor:
        """[K, d] head outputs -> their reconstruction: the mean plus the part in the picked texts' span."""
        centred = outputs.to(self.mean.device).float() - self.mean
        return self.mean + (centred @ self.directions.T) @ self.directions


def restrict_to_top_directions(texts: torch.Tensor, outputs: torch.Tensor, rank: int) -> torch.Tensor:
    """texts [M, d] projected onto the top-`rank` right singular vectors of the centred outputs [K, d].

    Taught in: notebook 06, "The algorithm".
    """
    centred = outputs - outputs.mean(dim=0, keepdim=True)
    basis = torch.linalg.svd(centred, full_matrices=False).Vh[:rank]  # [r, d]
    return texts @ basis.T @ basis


def projection_variance(outputs: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    """[K, d] outputs, [M, d] texts -> [M]: the variance over the K images of each output's dot product with each text.

    Taught in: notebook 06, "The algorithm".
    """
    return (outputs @ texts.T).var(dim=0)


def remove_direction(x: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """x [..., d] minus its component along `direction` [d] (any length).

    Taught in: notebook 06, "The algorithm".
    """
    u = direction / direction.norm()
    return x - (x @ u)[..., None] * u


def default_rank(d: int) -> int:
    """The paper keeps 80 of CLIP's 512 or 768 dimensions; for narrower models keep the same share of d.

    Taught in: notebook 06, "The algorithm".
    """
    return 80 if d >= 512 else max(4, round(80 * d / 512))


def textspan(outputs: torch.Tensor, text_embeddings: torch.Tensor, texts=None, n_texts: int = 5,
             rank: int | None = None) -> TextSpanResult:
    """Greedy TextSpan for one head. outputs [K, d] (images), text_embeddings [M, d] -> the n_texts best texts.

    Returns fewer than n_texts only if the texts, restricted to `rank` directions, have nothing left to explain.
    Taught in: notebook 06, "The algorithm".
    """
    if outputs.ndim != 2 or text_embeddings.ndim != 2 or outputs.shape[1] != text_embeddings.shape[1]:
        raise ValueError(f"textspan: outputs [K, d] and text_embeddings [M, d] must share d; "
                         f"got {tuple(outputs.shape)} and {tuple(text_embeddings.shape)}.")
    if not 1 <= n_texts <= len(text_embeddings):
        raise ValueError(f"textspan: n_texts={n_texts} must be between 1 and the pool size ({len(text_embeddings)}).")
    data = outputs.double()
    mean = data.mean(dim=0)  # [d]
    data = data - mean  # [K, d], centred: variances are about the spread, not the offset
    total = data.pow(2).sum()
    pool = text_embeddings.to(data.device).double()  # texts from the model's device, outputs usually on the CPU
    pool = restrict_to_top_directions(pool / pool.norm(dim=-1, keepdim=True), data, rank or default_rank(data.shape[1]))
    # var_k(C_k . t) = t . (C^T C) t / (K - 1) for centred C: one [d, d] matrix replaces the [K, d] outputs, and
    # removing a direction u from every output is G <- (I - uu^T) G (I - uu^T). Same picks as projection_variance.
    gram = data.T @ data  # [d, d]
    picked, explained, directions = [], [], []
    for _ in range(n_texts):
        variance = ((pool @ gram) * pool).sum(dim=-1) / (len(data) - 1)  # [M]: spread of the outputs along each text
        if picked:
            variance[picked] = -1.0  # a removed text has ~zero length; never pick it twice
        j = int(variance.argmax())
        if pool[j].norm() < 1e-9:  # the restricted texts span at most `rank` directions, and all are used up
            break
        u = pool[j] / pool[j].norm()  # [d]
        directions.append(u)
        gu = gram @ u  # [d]
        gram = gram - torch.outer(u, gu) - torch.outer(gu, u) + (u @ gu) * torch.outer(u, u)
        pool = remove_direction(pool, pool[j])
        picked.append(j)
        explained.append(float(1 - gram.trace() / total))
    names = [texts[j] for j in picked] if texts is not None else [str(j) for j in picked]
    return TextSpanResult(picked, names, explained, torch.stack(directions).float(), mean.float())


def textspan_all(contributions, text_embeddings: torch.Tensor, texts=None, layers=None, n_texts: int = 5,
                 rank: int | None = None) -> dict[tuple[int, int], TextSpanResult]:
    """TextSpan for every head of the chosen layers (default: all). contributions: a HeadContributions.

    Taught in: notebook 06, "Every late head, in words".
    """
    heads = contributions.heads  # [N_img, L, H, d]
    layers = range(heads.shape[1]) if layers is None else layers
    return {(l, h): textspan(heads[:, l, h], text_embeddings, texts, n_texts, rank)
            for l in layers for h in range(heads.shape[2])}


def replace_with_spans(contributions, spans: dict[tuple[int, int], TextSpanResult]) -> torch.Tensor:
    """[N_img, d] image embeddings with each head in `spans` replaced by its TextSpan reconstruction.

    Taught in: notebook 06, "How much do the words keep?".
    """
    total = contributions.total()
    for (l, h), result in spans.items():
        original = contributions.heads[:, l, h].float()
        total = total - original + result.reconstruct(original).to(total.device)
    return total


def greedy_indices(outputs: torch.Tensor, text_embeddings: torch.Tensor, n_texts: int, rank: int) -> torch.Tensor:
    """Just the picked indices, as a tensor (the reference for notebook 06's exercise).

    Taught in: notebook 06, "The algorithm".
    """
    return torch.tensor(textspan(outputs, text_embeddings, n_texts=n_texts, rank=rank).indices)


def property_shares(spans: dict, properties, n_texts: int | None = None) -> dict[tuple[int, int], tuple[str, float]]:
    """For each head: (the property most of its texts are about, the share of its texts about it).

    `properties[j]` names what pool text j is about (see course_utils.pools); distractors never count.
    Taught in: notebook 06, "Every late head, in words".
    """
    out = {}
    for key, result in spans.items():
        picked = [properties[j] for j in result.indices[:n_texts]]
        counts = {p: picked.count(p) for p in set(picked) if p != "distractor"}
        best = max(sorted(counts), key=counts.get) if counts else "distractor"
        out[key] = (best, counts.get(best, 0) / len(picked))
    return out


ROLE_PROPERTIES = ("colour", "shape", "position", "size", "count")  # the head roles we check (background is not one)


def toy_head_roles(n_scenes: int = 2000, layers=None, n_texts: int = 5) -> dict:
    """ToyCLIP's late heads described by the toy pool: per head, its texts and the share about one property.

    Used by: python -m course_utils.textspan and tests/test_textspan.py.
    """
    model, preprocess = load_toyclip("cpu")
    model = model.float()
    texts, props = pools.load_pool("toy")
    text_emb = encode_texts(model, texts)
    scenes = [(s.image, 0) for s in tw.scenes(n_scenes)]
    contrib = head_contributions(model, scenes, preprocess, batch_size=100, progress=False)
    n_layers = contrib.heads.shape[1]
    layers = list(layers) if layers is not None else [n_layers - 2, n_layers - 1]
    spans = textspan_all(contrib, text_emb, texts, layers=layers, n_texts=n_texts)
    shares = property_shares(spans, props)
    return {f"L{l}H{h}": dict(property=shares[(l, h)][0], share=shares[(l, h)][1],
                              texts=[f"{t} ({props[j]})" for t, j in zip(r.texts, r.indices)],
                              explained=round(r.explained[-1], 3))
            for (l, h), r in spans.items()}


def main(argv=None) -> int:
    """python -m course_utils.textspan: ToyCLIP's head roles (table, then one JSON line).

    Used by: python -m course_utils.textspan.
    """
    parser = argparse.ArgumentParser(description="TextSpan on ToyCLIP's last two layers, with the toy pool.")
    parser.add_argument("--scenes", type=int, default=2000)
    parser.add_argument("--texts", type=int, default=5)
    args = parser.parse_args(argv)
    roles = toy_head_roles(args.scenes, n_texts=args.texts)
    for head, r in roles.items():
        print(f"{head}  {r['property']:>10} {r['share']:4.0%}  explained {r['explained']:.2f}  | " + " · ".join(r["texts"]))
    strong = [r["property"] for r in roles.values() if r["share"] >= 0.8 and r["property"] in ROLE_PROPERTIES]
    summary = {head: {"property": r["property"], "share": r["share"]} for head, r in roles.items()}
    summary["heads_at_0.8"] = len(strong)
    summary["properties_at_0.8"] = sorted(set(strong))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
