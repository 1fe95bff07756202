"""Head roles at work: remove a spurious cue by mean-ablating heads, retrieve images by one property.

TextSpan (notebook 06) labels each late head with the property most of its texts are about. The paper uses those
labels twice: it mean-ablates the heads of a property that misleads zero-shot classification (Waterbirds), and it
ranks images by one head's contribution alone, to find images alike in that head's property. The toy world knows
every property of every object, so both uses are measured here against ground truth.

The spurious cue. ToyCLIP's world is balanced (every colour with every shape), so shape-only prompts
("a photo of a star") classify shapes at the same accuracy in every colour: nothing in ToyCLIP leans on colour.
Bias enters the way it enters CLIP through the word "waterbird", which carries "water" with it: the prompts name
each shape by its *typical* colour ("a photo of a red circle"), and the test set follows that habit 95% of the time
(Waterbirds' split). Groups are (shape, typical colour or not), 20 of them; the minority groups are the shapes
drawn in another colour, where the colour in the prompt points at the wrong class.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from . import toyworld as tw
from .decompose import HeadContributions
from .inside_vit import run_blocks
from .zero_shot import predict

TYPICAL_COLOUR = dict(zip(tw.SHAPES, tw.COLORS))  # shape -> the colour the prompts name it with: circle -> red, ...
MAJORITY_SHARE = 0.95  # share of each class drawn in its typical colour, as Waterbirds' 95% (Sagawa et al., 2020)
PROMPT_TEMPLATE = "a photo of a {colour} {shape}"
SPLIT_SEED = 9_000_000  # the spurious-cue scenes and the retrieval gallery: a split of their own
PROPERTIES = ("colour", "shape", "pattern", "size", "position")  # what a single-object scene's ground truth says


def spurious_prompts(typical: dict[str, str] = TYPICAL_COLOUR, template: str = PROMPT_TEMPLATE) -> list[str]:
    """One prompt per shape (in tw.SHAPES order), naming the shape by its typical colour.

    Taught in: notebook 09, "A classifier that leans on colour".
    """
    missing = [s for s in tw.SHAPES if s not in typical]
    if missing:
        raise ValueError(f"typical colours: no colour given for {missing}; give one colour per shape of tw.SHAPES.")
    for shape, colour in typical.items():
        tw.check_attributes(colour, shape)
    return [template.format(colour=typical[s], shape=s) for s in tw.SHAPES]


@dataclass
class GroupedScenes:
    """Single-object scenes with their ground truth, as the spurious-cue test set and the retrieval gallery use them.

    Taught in: notebook 09, "A classifier that leans on colour".
    """
    images: list  # PIL images
    values: dict[str, torch.Tensor]  # property -> [N] index into tw.COLORS, tw.SHAPES, tw.PATTERNS, tw.SIZES,
    # tw.POSITIONS_LIST
    typical: torch.Tensor  # [N] bool: drawn in its shape's typical colour
    groups: torch.Tensor  # [N] long: 2 * shape + (0 typical, 1 not), so 20 groups

    @property
    def labels(self) -> torch.Tensor:  # [N]: the task's label is the shape
        return self.values["shape"]


def _scene_values(scene) -> dict[str, int]:
    o = scene.objects[0]
    return dict(colour=list(tw.COLORS).index(o.color), shape=tw.SHAPES.index(o.shape),
                pattern=tw.PATTERNS.index(o.pattern), size=list(tw.SIZES).index(o.size),
                position=tw.POSITIONS_LIST.index(o.region))


def grouped_scenes(colour_shape_pairs, size: int = tw.IMAGE_SIZE, start: int = 0,
                   typical: dict[str, str] = TYPICAL_COLOUR) -> GroupedScenes:
    """Draw one single-object scene per (colour, shape) pair; scene i is seeded by (SPLIT_SEED + start + i).

    Used by: spurious_test_set and retrieval_gallery.
    """
    images, rows, typ = [], [], []
    for i, (colour, shape) in enumerate(colour_shape_pairs):
        label = tw.CLASSES.index(tw.class_name(colour, shape))
        scene = tw.random_scene(SPLIT_SEED + start + i, n_objects=1, label=label, size=size)
        images.append(scene.image)
        rows.append(_scene_values(scene))
        typ.append(typical[shape] == colour)
    values = {p: torch.tensor([r[p] for r in rows]) for p in PROPERTIES}
    typ = torch.tensor(typ, dtype=torch.bool)
    return GroupedScenes(images, values, typ, 2 * values["shape"] + (~typ).long())


def spurious_test_set(n_per_group: int = 50, size: int = tw.IMAGE_SIZE,
                      typical: dict[str, str] = TYPICAL_COLOUR) -> GroupedScenes:
    """n_per_group scenes in each of the 20 groups: every shape in its typical colour, and in the 9 others
    (cycled, so every atypical colour appears). Averages weight the groups as MAJORITY_SHARE says (group_average).

    Taught in: notebook 09, "A classifier that leans on colour".
    """
    if n_per_group < 1:
        raise ValueError(f"n_per_group={n_per_group}: each of the 20 groups needs at least one scene.")
    pairs = []
    for shape in tw.SHAPES:
        others = [c for c in tw.COLORS if c != typical[shape]]
        pairs += [(typical[shape], shape)] * n_per_group
        pairs += [(others[i % len(others)], shape) for i in range(n_per_group)]
    return grouped_scenes(pairs, size=size, typical=typical)


def retrieval_gallery(n_per_class: int = 5, size: int = tw.IMAGE_SIZE) -> GroupedScenes:
    """n_per_class single-object scenes of each of the 100 classes (sizes, positions and patterns random): few enough of
    each class that a query's ten nearest images can't all be its own class.

    Taught in: notebook 09, "Retrieval by one property".
    """
    if n_per_class < 1:
        raise ValueError(f"n_per_class={n_per_class}: the gallery needs at least one scene per class.")
    pairs = [tuple(c.split("_")) for c in tw.CLASSES] * n_per_class
    return grouped_scenes(pairs, size=size, start=1_000_000)


def group_accuracy(correct: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """correct [N] bool, groups [N] long in 0..n_groups-1 -> [n_groups] accuracy per group (NaN for an empty group).

    Taught in: notebook 09, "A classifier that leans on colour".
    """
    hits = torch.zeros(n_groups).index_add_(0, groups, correct.float())
    counts = torch.zeros(n_groups).index_add_(0, groups, torch.ones_like(correct, dtype=torch.float))
    return hits / counts


def group_average(per_group: torch.Tensor, majority_share: float = MAJORITY_SHARE) -> torch.Tensor:
    """[2 C] per-group accuracies (even: typical, odd: atypical) -> the average over a test set in which each class
    is typical with probability majority_share (Waterbirds reports its average this way, weighted like training).

    Taught in: notebook 09, "A classifier that leans on colour".
    """
    pairs = per_group.reshape(-1, 2)  # [C, 2]: (typical, atypical) per class
    return (majority_share * pairs[:, 0] + (1 - majority_share) * pairs[:, 1]).mean()


def mean_ablate_heads(heads: torch.Tensor, chosen) -> torch.Tensor:
    """heads [N, L, H, d] -> a copy in which each chosen (l, h) is replaced, in every image, by its mean over images.

    Taught in: notebook 09, "Ablating the colour heads".
    """
    out = heads.clone()
    for l, h in chosen:
        out[:, l, h] = heads[:, l, h].float().mean(dim=0).to(heads.dtype)
    return out


def ablate_heads(c: HeadContributions, chosen) -> HeadContributions:
    """The same contributions with the chosen heads mean-ablated (everything else shares c's tensors).

    Used by: spurious_report (notebook 09, "Ablating the colour heads").
    """
    L, H = c.heads.shape[1:3]
    bad = [(l, h) for l, h in chosen if not (0 <= l < L and 0 <= h < H)]
    if bad:
        raise IndexError(f"ablate_heads: {bad} are not heads of this model ({L} layers x {H} heads).")
    return replace(c, heads=mean_ablate_heads(c.heads, chosen))


def heads_labelled(roles: dict, prop: str) -> list[tuple[int, int]]:
    """The heads that TextSpan's labels (textspan.property_shares: (l, h) -> (property, share)) give to `prop`.

    Taught in: notebook 09, "Ablating the colour heads".
    """
    return sorted(key for key, (p, _) in roles.items() if p == prop)


def zero_shot_correct(embeddings: torch.Tensor, classifier: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[N, d] image embeddings, [C, d] unit class embeddings -> [N] bool: top-1 is the label.

    Used by: spurious_report.
    """
    return predict(embeddings.float(), classifier.float()) == labels


def random_head_draws(pool, k: int, n_draws: int, seed: int = 0) -> list[list[tuple[int, int]]]:
    """n_draws sets of k heads drawn without replacement from `pool` (the control for an ablation of k heads).

    Used by: spurious_report.
    """
    pool = sorted(pool)
    if not 0 < k <= len(pool):
        raise ValueError(f"random_head_draws: can't draw k={k} heads from a pool of {len(pool)}.")
    g = torch.Generator().manual_seed(seed)
    return [[pool[j] for j in torch.randperm(len(pool), generator=g)[:k].tolist()] for _ in range(n_draws)]


def spurious_report(c: HeadContributions, data: GroupedScenes, classifier: torch.Tensor, roles: dict,
                    spurious: str = "colour", task: str = "shape", n_draws: int = 20, seed: int = 0) -> dict:
    """Average and worst-group accuracy: plain; the `spurious` heads mean-ablated; as many random heads from the
    same layers (n_draws draws: mean and spread); the `task` heads ablated. Rows are dicts with average, worst and
    per_group ([20]); the random row adds worst_min, worst_max and the draws.

    Taught in: notebook 09, "Ablating the colour heads".
    """
    n_groups = int(data.groups.max()) + 1

    def row(contrib: HeadContributions, heads) -> dict:
        per_group = group_accuracy(zero_shot_correct(contrib.total(), classifier, data.labels), data.groups, n_groups)
        return dict(heads=list(heads), average=float(group_average(per_group)), worst=float(per_group.min()),
                    per_group=per_group)

    spurious_heads, task_heads = heads_labelled(roles, spurious), heads_labelled(roles, task)
    if not spurious_heads:
        raise ValueError(f"no head is labelled {spurious!r}; the labels give: {sorted({p for p, _ in roles.values()})}.")
    draws = [row(ablate_heads(c, heads), heads)
             for heads in random_head_draws(roles, len(spurious_heads), n_draws, seed)]
    worst = torch.tensor([d["worst"] for d in draws])
    random_row = dict(heads=f"{n_draws} draws of {len(spurious_heads)}", average=sum(d["average"] for d in draws) / n_draws,
                      worst=float(worst.mean()), worst_min=float(worst.min()), worst_max=float(worst.max()),
                      per_group=torch.stack([d["per_group"] for d in draws]).mean(dim=0), draws=draws)
    return {"plain zero-shot": row(c, []), f"{spurious} heads ablated": row(ablate_heads(c, spurious_heads), spurious_heads),
            "random heads ablated": random_row, f"{task} heads ablated": row(ablate_heads(c, task_heads), task_heads)}


def role_embeddings(c: HeadContributions, heads) -> torch.Tensor:
    """[N, d]: the sum of the chosen heads' contributions (token-summed), unit length: an image seen by those heads only.

    Taught in: notebook 09, "Retrieval by one property".
    """
    if not heads:
        raise ValueError("role_embeddings: no heads given; pass the (layer, head) pairs of one role.")
    summed = sum(c.heads[:, l, h].float() for l, h in heads)  # [N, d]
    return summed / summed.norm(dim=-1, keepdim=True)


def precision_at_k(embeddings: torch.Tensor, values: torch.Tensor, k: int = 10) -> torch.Tensor:
    """Leave-one-out retrieval: each image queries all the others by cosine similarity.
    embeddings [N, d], values [N] (one property) -> [N]: the share of its k nearest with the query's value.

    Taught in: notebook 09, "Retrieval by one property".
    """
    if not 0 < k < len(values):
        raise ValueError(f"precision_at_k: k={k} needs 0 < k < N={len(values)} images.")
    unit = embeddings.float() / embeddings.float().norm(dim=-1, keepdim=True)
    sim = unit @ unit.T  # [N, N]
    sim.fill_diagonal_(-float("inf"))  # never retrieve the query itself
    nearest = sim.topk(k, dim=-1).indices  # [N, k]
    return (values[nearest] == values[:, None]).float().mean(dim=-1)


def chance_precision(values: torch.Tensor) -> float:
    """The expected precision@k of a random ranking (any k): the chance that another image shares the query's value,
    averaged over queries. values [N] -> sum over values v of n_v (n_v - 1) / (N (N - 1)).

    Used by: retrieval_table (its "chance" row).
    """
    counts = torch.bincount(values).double()
    n = len(values)
    return float((counts * (counts - 1)).sum() / (n * (n - 1)))


def retrieval_table(c: HeadContributions, gallery: GroupedScenes, roles: dict, k: int = 10,
                    role_names=("colour", "shape", "pattern")) -> dict[str, dict[str, float]]:
    """Mean precision@k for each property (columns), searching with each role's heads, with the full embedding, and
    by chance (a random ranking).

    Taught in: notebook 09, "Retrieval by one property".
    """
    by_role = {r: heads_labelled(roles, r) for r in role_names}
    searches = {f"{r} heads": role_embeddings(c, heads) for r, heads in by_role.items() if heads}
    searches["full embedding"] = c.total()
    table = {name: {p: float(precision_at_k(emb, gallery.values[p], k).mean()) for p in PROPERTIES}
             for name, emb in searches.items()}
    table["chance"] = {p: chance_precision(gallery.values[p]) for p in PROPERTIES}
    return table


@torch.no_grad()
def token_norms(visual, images: torch.Tensor) -> torch.Tensor:
    """[L + 1, N]: the mean norm, over images, of every token of the residual stream before each block and after the
    last (token 0 is CLS). High-norm tokens (Darcet et al.) show up as bright columns.

    Taught in: notebook 09, "Where research went next".
    """
    norms = []
    for x_in, *_, x_out in run_blocks(visual, images):
        norms.append(x_in.float().norm(dim=-1).mean(dim=0))  # [N]
    norms.append(x_out.float().norm(dim=-1).mean(dim=0))
    return torch.stack(norms)
