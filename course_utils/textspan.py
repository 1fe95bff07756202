"""TextSpan (Gandelsman et al., ICLR 2024): describe what an attention head writes, with a few texts.

For one head we have its direct contributions over K images, C [K, d] (from `head_contributions`), and a pool
of M text embeddings T [M, d]. The greedy algorithm (the paper's Algorithm 1, its section 4.1):

1. Keep only the text directions the head can express: project the (unit) texts onto the top-r right singular
   vectors of the head outputs.  T <- T V_r^T V_r.
2. Repeat m times: score every text by the variance, over images, of the centred head outputs projected onto it,
   var_k(C_k . t_j); pick the best text; remove its direction u from the head outputs and from every remaining
   text (C <- C - (C u) u^T, T <- T - (T u) u^T), so the next pick explains something new.

Two conventions for step 1, as in `decompose`:
- `convention="paper"` (the default): the SVD of the *uncentred* outputs, as the authors' code does
  (`replace_with_iterative_removal` in compute_complete_text_set.py of yossigandelsman/clip_text_span). Its picks
  equal theirs, same texts in the same order (tests/test_textspan.py, against fixtures made with their code).
- `convention="centred"`: the SVD of the centred outputs, the directions the head *varies* along.

The rank r. The authors' default is r = 80 for every model: the width of one head of OpenCLIP ViT-H-14 (the
paper's main model, 1280 / 16). A head of ViT-B/16 or B/32 (768 / 12 = 64) writes at most 64 directions, so 16 of
those 80 are rounding noise, and then a 1e-6 change of the outputs changes the picks of almost every head. Here
the default r is the head outputs' numerical rank, capped at 80 (`default_rank`); notebook 06, "Checking the
authors' default", measures both.

The picked directions are orthonormal, so the head's outputs projected onto their span are its *TextSpan
reconstruction*; `explained` is the share of the head's variance that span captures after each pick.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass

import torch

from . import pools
from . import toyworld as tw
from .decompose import CONVENTIONS, check_convention, folded_readout, head_contributions, head_readouts
from .models import build, clip, load_toyclip
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


def restrict_to_top_directions(texts: torch.Tensor, outputs: torch.Tensor, rank: int, centre: bool = False) -> torch.Tensor:
    """texts [M, d] projected onto the top-`rank` right singular vectors of the outputs [K, d].

    centre=False takes the SVD of the outputs as they are (the authors' code); centre=True subtracts their mean first.
    Taught in: notebook 06, "The algorithm".
    """
    basis = _top_directions(outputs, centre)[0][:rank]  # [r, d]
    return texts @ basis.T @ basis


def _top_directions(outputs: torch.Tensor, centre: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Vh [min(K, d), d] and the singular values S of the outputs (centred first if `centre`)."""
    data = outputs - outputs.mean(dim=0, keepdim=True) if centre else outputs
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a [K, d] SVD gains nothing from threads, and with one of 2 cores busy elsewhere the
    try:  # threaded LAPACK call took 7.6 s instead of 0.03 s (300 x 512, measured on the course's 2-core machine)
        _, S, Vh = torch.linalg.svd(data, full_matrices=False)
    finally:
        torch.set_num_threads(threads)
    return Vh, S


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


PAPER_RANK = 80  # the authors' --w_ov_rank: one head's width in OpenCLIP ViT-H-14 (1280 / 16 heads)


def numerical_rank(singular_values: torch.Tensor, input_dtype: torch.dtype = torch.float32, size: int = 512) -> int:
    """How many singular values stand above rounding noise: σ_i > σ_1 · eps(input dtype) · sqrt(size).

    `input_dtype` is the precision the outputs were computed and stored in (float32 noise is ~1e-7 of σ_1, fp16 ~1e-3),
    `size` is max(K, d).

    Taught in: notebook 06, "Checking the authors' default".
    """
    tol = singular_values[0] * torch.finfo(input_dtype).eps * size ** 0.5
    return int((singular_values > tol).sum())


def default_rank(outputs: torch.Tensor, centre: bool = False) -> int:
    """The rank TextSpan keeps by default: the outputs' numerical rank, and never more than the authors' 80.

    Taught in: notebook 06, "Checking the authors' default".
    """
    return _capped_rank(_top_directions(outputs.double(), centre)[1], outputs)


def _capped_rank(singular_values: torch.Tensor, outputs: torch.Tensor) -> int:
    """min(80, numerical rank) for these singular values of `outputs` (its dtype sets the noise level)."""
    dtype = outputs.dtype if outputs.is_floating_point() else torch.float32
    return min(PAPER_RANK, numerical_rank(singular_values, dtype, max(outputs.shape)))


def textspan(outputs: torch.Tensor, text_embeddings: torch.Tensor, texts=None, n_texts: int = 5,
             rank: int | None = None, convention: str = "paper") -> TextSpanResult:
    """Greedy TextSpan for one head. outputs [K, d] (images), text_embeddings [M, d] -> the n_texts best texts.

    `rank`: how many singular directions of the outputs the texts are restricted to (default: `default_rank`).
    `convention`: "paper" (SVD of the uncentred outputs, as the authors' code) or "centred" (module docstring).
    The texts are made unit-length first (the authors' pools are). Returns fewer than n_texts only if the
    restricted texts have nothing left to explain.

    Taught in: notebook 06, "The algorithm".
    """
    if outputs.ndim != 2 or text_embeddings.ndim != 2 or outputs.shape[1] != text_embeddings.shape[1]:
        raise ValueError(f"textspan: outputs [K, d] and text_embeddings [M, d] must share d; "
                         f"got {tuple(outputs.shape)} and {tuple(text_embeddings.shape)}.")
    if not 1 <= n_texts <= len(text_embeddings):
        raise ValueError(f"textspan: n_texts={n_texts} must be between 1 and the pool size ({len(text_embeddings)}).")
    check_convention(convention, "textspan")
    if rank is not None and rank < 1:
        raise ValueError(f"textspan: rank={rank} must be at least 1 (or None for the default, the numerical rank).")
    data = outputs.detach().double()
    pool = text_embeddings.detach().to(data.device).double()  # texts from the model's device, outputs usually on the CPU
    Vh, S = _top_directions(data, centre=convention == "centred")  # one SVD: the basis and the numerical rank
    rank = _capped_rank(S, outputs) if rank is None else rank
    basis = Vh[:rank]  # [r, d]
    # Everything below lives inside the r kept directions: a text is its r coordinates there ([M, r], this is
    # restrict_to_top_directions), and the picks, being restricted texts, never leave that span either.
    coords = (pool / pool.norm(dim=-1, keepdim=True)) @ basis.T  # [M, r]
    mean = data.mean(dim=0)  # [d]
    data = data - mean  # [K, d], centred: variances are about the spread, not the offset
    remaining = data.pow(2).sum()  # the head's total variance (times K - 1), shrinking as picks explain it
    total = remaining
    # var_k(C_k . t) = t . (C^T C) t / (K - 1) for centred C: one [r, r] matrix replaces the [K, d] outputs, and
    # removing a direction u from every output is G <- (I - uu^T) G (I - uu^T). Same picks as projection_variance.
    inside = data @ basis.T  # [K, r]
    gram = inside.T @ inside  # [r, r]
    picked, explained, directions = [], [], []
    for _ in range(n_texts):
        variance = ((coords @ gram) * coords).sum(dim=-1) / (len(data) - 1)  # [M]: the outputs' spread along each text
        if picked:
            variance[picked] = -1.0  # a removed text has ~zero length; never pick it twice
        j = int(variance.argmax())
        if coords[j].norm() < 1e-9:  # the restricted texts span at most `rank` directions, and all are used up
            break
        u = coords[j] / coords[j].norm()  # [r]
        directions.append(u @ basis)  # [d]
        gu = gram @ u  # [r]
        remaining = remaining - u @ gu  # removing u takes away exactly the variance along it
        gram = gram - torch.outer(u, gu) - torch.outer(gu, u) + (u @ gu) * torch.outer(u, u)
        coords = remove_direction(coords, coords[j])
        picked.append(j)
        explained.append(float(1 - remaining / total))
    names = [texts[j] for j in picked] if texts is not None else [str(j) for j in picked]
    return TextSpanResult(picked, names, explained, torch.stack(directions).float(), mean.float())


def random_head_outputs(name: str = "ViT-B/16", layers=(10, 11), K: int = 300, seed: int = 0) -> list[torch.Tensor]:
    """Outputs [K, d] of every head of `layers` of a random openai ViT, in the paper's convention, without images.

    A head's token-summed output is (its pooled values) @ W_O,h (γ ⊙ proj) / σ + constant shares (decompose), so
    random pooled values [K, d_h] with a decaying spectrum, through the model's real W_O,h (γ ⊙ proj), a per-image
    1/σ and an offset, have the rank structure of a real head. 300 images through a ViT-B/16 would take a minute on
    a CPU; this takes a second.

    Taught in: notebook 06, "Checking the authors' default".
    """
    visual = build(name, seed).visual.float()
    G, beta = folded_readout(visual, "paper")
    g = torch.Generator().manual_seed(seed)
    heads = []
    with torch.no_grad():
        for l in layers:
            readouts = head_readouts(visual.transformer.resblocks[l], G)  # [H, d_h, d]
            width = readouts.shape[1]
            for R in readouts:
                pooled = torch.randn(K, width, generator=g) * torch.exp(-torch.arange(width) / 20)  # [K, d_h]
                inv_sigma = 1 + 0.1 * torch.rand(K, 1, generator=g)  # [K, 1]
                heads.append((pooled @ R * inv_sigma + 0.01 * beta).float())
    return heads


def jitter_stability(heads, text_embeddings: torch.Tensor, ranks=(PAPER_RANK, None), n_texts: int = 10,
                     jitter: float = 1e-6, seed: int = 0) -> dict:
    """For each rank (None = the default): in how many of `heads` ([K, d] each) TextSpan's n_texts picks survive
    multiplying the outputs by (1 + jitter · N(0, 1)), entry by entry.

    Taught in: notebook 06, "Checking the authors' default".
    """
    g = torch.Generator().manual_seed(seed)
    unchanged = {rank: 0 for rank in ranks}
    for outputs in heads:
        outputs = outputs.float()
        jittered = outputs * (1 + jitter * torch.randn(outputs.shape, generator=g))
        for rank in ranks:
            unchanged[rank] += textspan(outputs, text_embeddings, n_texts=n_texts, rank=rank).indices == \
                textspan(jittered, text_embeddings, n_texts=n_texts, rank=rank).indices
    return unchanged


def textspan_all(contributions, text_embeddings: torch.Tensor, texts=None, layers=None, n_texts: int = 5,
                 rank: int | None = None, convention: str = "paper") -> dict[tuple[int, int], TextSpanResult]:
    """TextSpan for every head of the chosen layers (default: all). contributions: a HeadContributions.

    Taught in: notebook 06, "Every late head, in words".
    """
    heads = contributions.heads  # [N_img, L, H, d]
    layers = range(heads.shape[1]) if layers is None else layers
    return {(l, h): textspan(heads[:, l, h], text_embeddings, texts, n_texts, rank, convention)
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


ROLE_PROPERTIES = ("colour", "shape", "position", "size", "count", "pattern")  # the head roles we check (background is not one)
ROLE_BAR = 0.8  # a head has a role if at least this share of its texts is about one property


def toy_head_roles(n_scenes: int = 2000, layers=None, n_texts: int = 5, rank: int | None = None,
                   convention: str = "paper", model=None) -> dict:
    """ToyCLIP's (or `model`'s, at the toy world's 64 px) late heads described by the toy pool: per head, its texts
    and the share about one property.

    Used by: python -m course_utils.textspan, compare_maps.premises and tests/test_textspan.py.
    """
    if model is None:
        model, _ = load_toyclip("cpu")
    preprocess = clip.clip._transform(model.visual.input_resolution)  # what load_clip returns with the model
    model = model.float()
    texts, props = pools.load_pool("toy")
    text_emb = encode_texts(model, texts)
    scenes = [(s.image, 0) for s in tw.scenes(n_scenes)]
    contrib = head_contributions(model, scenes, preprocess, batch_size=100, progress=False, convention=convention)
    n_layers = contrib.heads.shape[1]
    layers = list(layers) if layers is not None else [n_layers - 2, n_layers - 1]
    spans = textspan_all(contrib, text_emb, texts, layers=layers, n_texts=n_texts, rank=rank, convention=convention)
    shares = property_shares(spans, props)
    return {f"L{l}H{h}": dict(property=shares[(l, h)][0], share=shares[(l, h)][1],
                              texts=[f"{t} ({props[j]})" for t, j in zip(r.texts, r.indices)],
                              explained=round(r.explained[-1], 3))
            for (l, h), r in spans.items()}


def role_heads(roles: dict, bar: float = ROLE_BAR) -> list[str]:
    """The heads of toy_head_roles' result with at least `bar` of their texts about one role property.

    Used by: main and compare_maps.premises (TextSpan's premise: heads with roles).
    """
    return [head for head, r in roles.items() if r["share"] >= bar and r["property"] in ROLE_PROPERTIES]


def confirmed_role_heads(roles: dict, truth: dict, bar: float = ROLE_BAR) -> list[str]:
    """The role heads (role_heads) whose role the scenes confirm: the property TextSpan's texts name also explains at
    least `bar` of the head's output variance (truth: head_property_shares). A head can write along a property's
    words and vary with something else; TextSpan alone would still name it by those words.

    Taught in: notebook 08, "Each method's premise, measured before any ranking".
    """
    return [head for head in role_heads(roles, bar) if truth[head].get(roles[head]["property"], 0.0) >= bar]


def explained_share(outputs: torch.Tensor, values: list) -> float:
    """The share of the variance of `outputs` [n, d] that one categorical property explains: R² of the least-squares
    fit of the outputs from the property's one-hot code (`values`, n labels), i.e. the variance of the per-value
    means over the total variance. 1: the outputs are a function of the property; 0: they don't depend on it.

    Used by: head_property_shares.
    """
    y = outputs.double() - outputs.double().mean(dim=0)  # [n, d]
    codes = {v: i for i, v in enumerate(sorted(set(values)))}
    index = torch.tensor([codes[v] for v in values])
    means = torch.zeros(len(codes), y.shape[1], dtype=y.dtype).index_add_(0, index, y)
    means /= torch.bincount(index, minlength=len(codes))[:, None]  # [values, d]: each value's mean output
    return float((means[index] ** 2).sum() / (y ** 2).sum())


PROPERTIES_OF_SCENES = ("colour", "shape", "size", "position", "background", "count", "pattern")  # head_property_shares' keys
SPLIT_SEED_PROPERTIES = 900_000  # head_property_shares' scenes: far from training's (0-119,999) and toyworld's splits


def head_property_shares(model, n_scenes: int = 2000, layers=None) -> dict[str, dict[str, float]]:
    """The ground truth behind TextSpan's head roles: per head of `layers` (default: the last two), the share of its
    output variance (token-summed direct contribution, as TextSpan reads it) explained by each property of the scene.
    Colour, shape, size, position, pattern and background on `n_scenes` one-object scenes; count on as many 1-3-object
    scenes.

    TextSpan names a head by texts; this asks the scenes. A head "about position" needs a large position share.
    Used by: compare_maps.premises (confirmed_role_heads), the model card (data/README.md) and tests/test_textspan.py.
    """
    preprocess = clip.clip._transform(model.visual.input_resolution)
    single = [tw.random_scene(SPLIT_SEED_PROPERTIES + i, n_objects=1) for i in range(n_scenes)]
    mixed = [tw.random_scene(SPLIT_SEED_PROPERTIES + n_scenes + i) for i in range(n_scenes)]
    model = model.float()
    one, several = [head_contributions(model, [(s.image, 0) for s in scenes], preprocess, batch_size=100,
                                       progress=False).heads for scenes in (single, mixed)]  # [n, L, H, d] each
    L, H = one.shape[1:3]
    layers = list(layers) if layers is not None else [L - 2, L - 1]
    objects = [s.objects[0] for s in single]
    truth = dict(colour=(one, [o.color for o in objects]), shape=(one, [o.shape for o in objects]),
                 size=(one, [o.size for o in objects]), position=(one, [o.position for o in objects]),
                 background=(one, [s.background for s in single]), count=(several, [len(s.objects) for s in mixed]),
                 pattern=(one, [o.pattern for o in objects]))
    return {f"L{l}H{h}": {p: round(explained_share(out[:, l, h], values), 3) for p, (out, values) in truth.items()}
            for l in layers for h in range(H)}


def ideal_head_share(text_embeddings: torch.Tensor, properties, prop: str, value_rows: list[list[int]],
                     n_texts: int = 5, n_outputs: int = 1000, noise: float = 0.05, seed: int = 0) -> float:
    """The share of its n_texts TextSpan texts about `prop` that a head about `prop` alone gets: the most a role
    share can be for that property, on this text space. properties[j] names pool text j's property (pools);
    value_rows: for each of the property's V values, the rows of the pool texts that name it (at least one each).

    The ideal head writes, for image k, the mean unit embedding of the texts naming value k mod V, plus isotropic
    noise (`noise` times the values' spread), and nothing else. Its outputs vary along at most V − 1 directions, and
    each pick removes one: once those are used, the next picks are decided by the noise and by which texts the
    removals left longest, not by the property. So a property with few values (2 sizes: one direction for 5 texts)
    fills a long list only if its texts happen to win those leftover picks; this measures whether they do.
    Taught in: notebook 08, "Each method's premise, measured before any ranking".
    """
    if not value_rows or any(len(rows) == 0 for rows in value_rows):
        raise ValueError(f"ideal_head_share: every value of {prop!r} needs at least one pool text naming it; "
                         f"got {[len(rows) for rows in value_rows]} texts per value.")
    pool = torch.nn.functional.normalize(text_embeddings.detach().float().cpu(), dim=-1)  # [M, d]
    directions = torch.stack([pool[rows].mean(dim=0) for rows in value_rows])  # [V, d]: one per value
    outputs = directions[torch.arange(n_outputs) % len(directions)]  # [K, d]: image k shows value k mod V
    spread = (directions - directions.mean(dim=0)).norm(dim=-1).mean()
    g = torch.Generator().manual_seed(seed)
    outputs = outputs + noise * spread / pool.shape[1] ** 0.5 * torch.randn(outputs.shape, generator=g)
    picked = [properties[j] for j in textspan(outputs, pool, n_texts=n_texts).indices]
    return picked.count(prop) / len(picked)


TOY_VALUES = dict(colour=list(tw.COLORS), shape=list(tw.SHAPES), size=list(tw.SIZES),  # each property's values,
                  position=list(tw.POSITIONS.values()), count=["one", "two", "three"], pattern=list(tw.PATTERNS))  # as the toy pool words them


def toy_role_ceiling(model=None, n_texts: int = 5) -> dict[str, dict]:
    """Per role property of the toy world: how many values it has and ideal_head_share on `model`'s toy pool (the
    text space that toy_head_roles reads heads with). A property whose share stays under ROLE_BAR
    can give no head a role, whatever the model's heads carry.

    Used by: compare_maps.premises and tests/test_textspan.py.
    """
    if model is None:
        model, _ = load_toyclip("cpu")
    texts, props = pools.load_pool("toy")
    text_emb = encode_texts(model.float(), texts)
    out = {}
    for prop in ROLE_PROPERTIES:
        words = TOY_VALUES[prop]
        rows = [[j for j, (t, p) in enumerate(zip(texts, props)) if p == prop and re.search(rf"\b{w}\b", t)]
                for w in words]
        out[prop] = dict(values=len(words), share=round(ideal_head_share(text_emb, props, prop, rows, n_texts), 3))
    return out


def main(argv=None) -> int:
    """python -m course_utils.textspan: ToyCLIP's head roles (table, then one JSON line).

    Used by: python -m course_utils.textspan.
    """
    parser = argparse.ArgumentParser(description="TextSpan on ToyCLIP's last two layers, with the toy pool.")
    parser.add_argument("--scenes", type=int, default=2000)
    parser.add_argument("--texts", type=int, default=5)
    parser.add_argument("--rank", type=int, default=None, help="default: each head's numerical rank (at most 80)")
    parser.add_argument("--convention", choices=CONVENTIONS, default="paper",
                        help="for both the decomposition and TextSpan's SVD (see course_utils.decompose)")
    args = parser.parse_args(argv)
    model, _ = load_toyclip("cpu")  # loaded once, for the roles and the ceiling
    roles = toy_head_roles(args.scenes, n_texts=args.texts, rank=args.rank, convention=args.convention, model=model)
    for head, r in roles.items():
        print(f"{head}  {r['property']:>10} {r['share']:4.0%}  explained {r['explained']:.2f}  | " + " · ".join(r["texts"]))
    strong = [roles[head]["property"] for head in role_heads(roles)]
    summary = {head: {"property": r["property"], "share": r["share"]} for head, r in roles.items()}
    summary["heads_at_0.8"] = len(strong)
    summary["properties_at_0.8"] = sorted(set(strong))
    ceiling = toy_role_ceiling(model, n_texts=args.texts)
    print("a head about one property alone would get (toy_role_ceiling): "
          + ", ".join(f"{p} {c['share']:.0%} ({c['values']} values)" for p, c in ceiling.items()))
    summary["ceiling"] = {p: c["share"] for p, c in ceiling.items()}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
