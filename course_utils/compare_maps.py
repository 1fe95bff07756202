"""Compare heatmap methods on ground truth: python -m course_utils.compare_maps

Every method makes, for each object of a two-object toy scene, a map for that object's class prompt
("a photo of a red star"). The toy world knows each object's mask, so each map gets a score:

- pointing game: does the map's peak land on the object (within the standard tolerance)?
- mIoU: the map binarised at its own mean, against the object's mask (foreground/background mean IoU);
- mAP: average precision of the map's pixel scores as a detector of the object's pixels;
- seconds per map: wall time of the method over all scenes, divided by the number of maps scored.

Methods: `textspan` (the decomposition's direct-effect map, all layers and heads, relative to the mean over the
100 class prompts), `legrad_last2` (the authors' default), `legrad_all` (every block), and two class-agnostic
baselines that ignore the prompt: `raw_attention` (last block, CLS query, mean over heads) and `rollout`
(Abnar & Zuidema, 2020: attention with the residual added, multiplied through the blocks).

The same normalisation for both methods (FAIR_METHODS, the command line's default). A map can be *absolute* (the
method's own scores for that prompt) or *relative to the prompt set* (minus the mean of the maps of all 100 class
prompts, which removes what every prompt lights up). TextSpan's default is relative and LeGrad's is absolute, so each
is also scored the other way: `textspan_absolute`, `legrad_last2_relative`, `legrad_all_relative`. (LeGrad's min-max
step doesn't matter here: every score below ranks pixels within one map, and min-max keeps that order.)
`legrad_last2_centred` changes the prompt, not the map: LeGrad (last two blocks) for each prompt minus the mean of
the 100 class prompts, renormalised, so what every prompt shares is not asked about. TextSpan's map is linear in the
prompt, so for TextSpan that is its relative map, up to a positive factor per prompt (the same scores); for LeGrad
it costs one map per prompt, not 100.
Chance, measured: `centre_prior` (highest at the image centre) and `random_map` (seeded noise on the model's patch
grid) ignore the prompt and the image. Every result also says where the misses landed: on the scene's other object
(the map answered the wrong prompt) or on the background (within the same tolerance as the hits).
The last printed line is one JSON object: {method: {pointing_game, miou, map, seconds_per_map, misses...}}.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import toyworld as tw
from .data import pil_batch, to_input
from .decompose import unfolded_decompose
from .heatmaps import textspan_heatmap, to_grid, upsample
from .inside_vit import trace_vit
from .models import load_toyclip, random_clip, vit_visual
from .legrad import legrad, readout_accuracy
from .legrad_twin import legrad_torch_maps  # its open_clip and legrad-torch load only when called
from .metrics import average_precision, binarize, mean_iou, pointing_hit, standard_tolerance
from .report import best_time, proc_status_kb
from .textspan import ROLE_BAR, confirmed_role_heads, head_property_shares, role_heads, toy_head_roles, toy_role_ceiling
from .zero_shot import zero_shot_classifier

METHODS = ("textspan", "legrad_last2", "legrad_all", "raw_attention", "rollout")
# Maps that change the prompt rather than normalise the map: scored to explain a result, never ranked by `verdict`
DIAGNOSES = ("legrad_last2_centred",)
# Both methods under both normalisations, LeGrad with the shared part of the prompts removed (a diagnosis),
# and the chance level measured with two maps that ignore prompt and image
FAIR_METHODS = ("textspan", "textspan_absolute", "legrad_last2", "legrad_last2_relative", "legrad_last2_centred",
                "legrad_all", "legrad_all_relative", "centre_prior", "random_map")
ALL_METHODS = tuple(dict.fromkeys(METHODS + FAIR_METHODS))
N_SCENES = 250  # two objects each: 500 scored maps


def _upsample(grid_scores: torch.Tensor, size: int) -> torch.Tensor:
    """[g²] scores for the image tokens -> [size, size]."""
    return upsample(to_grid(grid_scores)[None, None], size)[0, 0]


@torch.no_grad()
def raw_attention(model, image: torch.Tensor) -> torch.Tensor:
    """The last block's CLS-query attention to the patches, mean over heads: [R, R]. The same for every prompt.

    Scale: attention probabilities (the patches' values sum to at most 1, minus what CLS gives itself).

    Taught in: notebook 08, "Two baselines that ignore the prompt".
    """
    probs = trace_vit(model, image[None], cls_only=True).attn_probs[-1]  # [1, H, 1, N]
    return _upsample(probs[0, :, 0, 1:].mean(dim=0), image.shape[-1])


def rollout_from_probs(probs: torch.Tensor) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020). probs [L, H, N, N] -> [N-1]: the CLS row of the rolled-out map.

    Each block: A = mean over heads, plus the identity for the residual stream (0.5 A + 0.5 I), rows renormalised;
    then multiply the blocks' matrices, last block on the left.

    Taught in: notebook 08, "Two baselines that ignore the prompt".
    """
    eye = torch.eye(probs.shape[-1], dtype=probs.dtype, device=probs.device)
    joint = eye
    for layer in probs:  # [H, N, N], first block first
        a = 0.5 * layer.mean(dim=0) + 0.5 * eye
        joint = (a / a.sum(dim=-1, keepdim=True)) @ joint
    return joint[0, 1:]


@torch.no_grad()
def rollout(model, image: torch.Tensor) -> torch.Tensor:
    """Attention rollout for one image -> [R, R]. The same for every prompt.

    Scale: rolled-out attention weights (a row of products of row-stochastic matrices: values in [0, 1]).

    Taught in: notebook 08, "Two baselines that ignore the prompt".
    """
    probs = torch.stack([p[0] for p in trace_vit(model, image[None]).attn_probs])  # [L, H, N, N]
    return _upsample(rollout_from_probs(probs), image.shape[-1])


def centre_prior(size: int) -> torch.Tensor:
    """[size, size]: closeness of each pixel to the image centre (minus the squared distance). Ignores prompt and image.

    Used by: method_maps ("centre_prior": a measured chance level).
    """
    c = (size - 1) / 2
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    return -((ys - c) ** 2 + (xs - c) ** 2)


def method_maps(method: str, model, image: torch.Tensor, prompts: torch.Tensor, labels, class_emb: torch.Tensor,
                generator: torch.Generator | None = None):
    """[len(labels), R, R]: the method's map for each wanted class (labels index class_emb's rows).

    Scales differ by method (each function's docstring says which); the metrics compare maps within an image only.
    "..._relative" and "textspan_absolute": see the module docstring. `generator` seeds "random_map".

    Taught in: notebook 08, "Two baselines that ignore the prompt".
    """
    visual = vit_visual(model, "method_maps")
    blocks = range(len(visual.transformer.resblocks))
    size, grid = image.shape[-1], math.isqrt(visual.positional_embedding.shape[0] - 1)
    if method == "textspan":
        return textspan_heatmap(model, image, class_emb)[labels]  # relative to the mean over all classes
    if method == "textspan_absolute":
        return textspan_heatmap(model, image, prompts, relative=False)
    if method in ("legrad_last2_relative", "legrad_all_relative"):  # every class's map, minus their mean
        every = legrad(model, image, class_emb, layers=blocks if "all" in method else None, normalize=False)
        return (every - every.mean(dim=0, keepdim=True))[labels]
    if method == "legrad_last2":
        return legrad(model, image, prompts)
    if method == "legrad_last2_centred":  # [P, d]: each prompt minus the class prompts' mean, back to unit length
        return legrad(model, image, centred_prompts(prompts, class_emb))
    if method == "legrad_all":
        return legrad(model, image, prompts, layers=blocks)
    if method == "centre_prior":
        return centre_prior(size).expand(len(labels), -1, -1)
    if method == "random_map":
        noise = torch.rand(grid * grid, generator=generator)
        return _upsample(noise, size).expand(len(labels), -1, -1)
    if method == "raw_attention":
        return raw_attention(model, image).expand(len(labels), -1, -1)
    if method == "rollout":
        return rollout(model, image).expand(len(labels), -1, -1)
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(ALL_METHODS)}.")


def centred_prompts(prompts: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
    """[P, d] unit prompts minus the mean of class_emb [C, d], renormalised: what every class prompt shares, removed.

    For a map that is linear in the prompt (TextSpan's), this gives the relative map up to a positive factor.
    Used by: method_maps ("legrad_last2_centred", in notebook 08's table, "The measured table, fair by construction").
    """
    return F.normalize(prompts - class_emb.mean(dim=0), dim=-1)


def map_costs(model, image: torch.Tensor, prompts: torch.Tensor, repeats: int = 3) -> dict:
    """Seconds per call (best of `repeats`, after a warm-up), all in this run, on the model's device, for one image
    [3, R, R] and unit prompts [P, d]: a plain forward pass, our TextSpan map, our LeGrad (last two blocks, every
    block), the decomposition in the authors' order of work (decompose.unfolded_decompose, no folding), and
    legrad-torch on the same weights (None when it is not installed or can't build this architecture).

    Taught in: notebook 08, "Time and memory per map".
    """
    blocks = range(len(vit_visual(model, "map_costs").transformer.resblocks))
    with torch.no_grad():
        costs = dict(encode_image=best_time(lambda: model.encode_image(image[None]), repeats),
                     textspan_map=best_time(lambda: textspan_heatmap(model, image, prompts), repeats),
                     unfolded_decomposition=best_time(lambda: unfolded_decompose(model, image[None]), repeats))
    costs["legrad_last2"] = best_time(lambda: legrad(model, image, prompts), repeats)
    costs["legrad_all"] = best_time(lambda: legrad(model, image, prompts, layers=blocks), repeats)
    try:
        theirs = legrad_torch_maps(model, layer_index=-2)
    except (ImportError, ValueError, KeyError, RuntimeError) as err:  # not installed, or no open_clip twin of it
        costs["legrad_torch"], costs["legrad_torch_missing"] = None, f"{type(err).__name__}: {err}"[:200]
    else:
        costs["legrad_torch"] = best_time(lambda: theirs(image, prompts), repeats)
    return costs


def cost_ratios(costs: dict) -> dict:
    """map_costs' seconds -> the ratios the comparison quotes: TextSpan over our LeGrad (last two blocks, every
    block) and over a forward pass, our LeGrad over legrad-torch (None where it wasn't measured), and the authors'
    order of work over a forward pass.

    Taught in: notebook 08, "Time and memory per map". Used by: benchmarks/legrad_cost.py.
    """
    forward, textspan, ours = costs["encode_image"], costs["textspan_map"], costs["legrad_last2"]
    theirs = costs["legrad_torch"]
    return dict(ours_over_legrad_torch=ours / theirs if theirs else None,
                textspan_over_legrad=textspan / ours,  # LeGrad on the last two blocks (legrad-torch's default)
                textspan_over_legrad_all_layers=textspan / costs["legrad_all"],  # every block (LeGrad's paper)
                textspan_over_encode_image=textspan / forward,  # 1.0 would be a plain forward pass
                unfolded_decomposition_over_encode_image=costs["unfolded_decomposition"] / forward)


def class_embeddings(model) -> torch.Tensor:
    """[100, d] unit-norm embeddings of the toy classes with the course's prompt ("a photo of a red star.").

    Used by: notebook 08's setup cell (class_emb), compare and wrong_prompt_test.
    """
    return zero_shot_classifier(model, tw.CLASSES)


def compare(model=None, n_scenes: int = N_SCENES, methods=METHODS, progress: bool = True) -> dict:
    """Score every method on the first `n_scenes` two-object scenes -> {method: {pointing_game, miou, map, ...}}.

    Taught in: notebook 08, "The measured table, fair by construction".
    """
    if model is None:
        model, _ = load_toyclip("cpu")
    model = model.float().eval()
    unknown = [m for m in methods if m not in ALL_METHODS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; choose from {', '.join(ALL_METHODS)}.")
    size = vit_visual(model, "compare").input_resolution  # ToyCLIP 64 px; openai's ViTs 224 px
    scenes = tw.scenes(n_scenes, n_objects=2, size=size)
    class_emb = class_embeddings(model)
    tolerance = standard_tolerance(size)
    scores = {m: dict(hits=[], other=[], miou=[], ap=[], seconds=0.0) for m in methods}
    warm = to_input(pil_batch([scenes[0].image]))[0]
    for m in methods:  # the first call of each method pays one-off costs; keep them out of the timing
        method_maps(m, model, warm, class_emb[:2], [0, 1], class_emb, torch.Generator().manual_seed(0))
    noise = torch.Generator().manual_seed(0)  # random_map's maps: the same on every run
    for scene in tqdm(scenes, desc="scoring maps", disable=not progress, mininterval=5):
        image = to_input(pil_batch([scene.image]))[0]  # [3, R, R]: the same as the model's preprocess at its own size
        labels = [obj.label for obj in scene.objects]
        for m in methods:
            start = time.perf_counter()
            maps = method_maps(m, model, image, class_emb[labels], labels, class_emb, noise)
            scores[m]["seconds"] += time.perf_counter() - start
            for i, (obj, heat) in enumerate(zip(scene.objects, maps)):
                hit = pointing_hit(heat, obj.mask, tolerance)
                others = [o for j, o in enumerate(scene.objects) if j != i]
                scores[m]["hits"].append(hit)  # a miss lands on another object, or on the background
                scores[m]["other"].append(not hit and any(pointing_hit(heat, o.mask, tolerance) for o in others))
                scores[m]["miou"].append(mean_iou(binarize(heat), obj.mask))
                scores[m]["ap"].append(average_precision(heat, obj.mask))
    results = {}
    for m, s in scores.items():
        n, hits, other = len(s["hits"]), float(np.mean(s["hits"])), float(np.mean(s["other"]))
        results[m] = dict(pointing_game=round(hits, 4), miou=round(float(np.mean(s["miou"])), 4),
                          map=round(float(np.mean(s["ap"])), 4), seconds_per_map=float(f"{s['seconds'] / n:.3g}"),
                          objects=n, misses_on_other_object=round(other, 4),
                          misses_on_background=round(1 - hits - other, 4))
    return results


def absent_class(scene, seed: int) -> int:
    """A class whose colour and shape both differ from every object in the scene.

    Taught in: notebook 08, "Does a wrong prompt give a weak map?".
    """
    rng = np.random.default_rng(seed)
    colours = {o.color for o in scene.objects}
    shapes = {o.shape for o in scene.objects}
    options = [i for i, c in enumerate(tw.CLASSES) if c.split("_")[0] not in colours and c.split("_")[1] not in shapes]
    return int(rng.choice(options))


def wrong_prompt_test(model=None, n_scenes: int = 100, progress: bool = True) -> dict:
    """Does a prompt for something absent give a weaker map than a prompt for an object that is there?

    Per scene: the peak of the map for one present object's class against the peak for an absent class (a colour and
    a shape not in the scene). Maps are compared *before* any min-max scaling: TextSpan's relative scores, and LeGrad's
    summed relevance (normalize=False); after LeGrad's min-max step every map peaks at exactly 1.
    Returns, per method, the share of scenes where the present object's peak is higher, and the mean peak ratio.

    Taught in: notebook 08, "Does a wrong prompt give a weak map?".
    """
    if model is None:
        model, _ = load_toyclip("cpu")
    model = model.float().eval()
    class_emb = class_embeddings(model)
    out = {m: dict(wins=[], ratio=[]) for m in ("textspan", "legrad_last2")}
    size = vit_visual(model, "wrong_prompt_test").input_resolution
    for i, scene in enumerate(tqdm(tw.scenes(n_scenes, n_objects=2, size=size), desc="wrong prompts", disable=not progress)):
        image = to_input(pil_batch([scene.image]))[0]
        pair = [scene.objects[0].label, absent_class(scene, i)]  # [present, absent]
        peaks = {"textspan": textspan_heatmap(model, image, class_emb)[pair].amax(dim=(1, 2)),
                 "legrad_last2": legrad(model, image, class_emb[pair], normalize=False).amax(dim=(1, 2))}
        for m, (present, absent) in peaks.items():
            out[m]["wins"].append(bool(present > absent))
            out[m]["ratio"].append(float(absent / present) if present > 0 else float("nan"))
    return {m: dict(present_beats_absent=round(float(np.mean(v["wins"])), 4),
                    absent_over_present_peak=round(float(np.nanmean(v["ratio"])), 3), scenes=n_scenes)
            for m, v in out.items()}


LEGRAD_PREMISE = 0.80  # top-1 of the last block's token-mean readout on the toy test set
TEXTSPAN_PREMISE = (6, 3)  # late heads (last two layers) with one confirmed property at >= 0.8, and how many properties


def premises(model=None, n_images: int = 1000, n_scenes: int = 2000) -> dict:
    """Each method's premise, measured on this model, before any ranking of the two.

    LeGrad reads every block through the mean of its tokens (legrad.layer_score): that reading must classify
    (the last block's token-mean top-1 >= LEGRAD_PREMISE on the toy test set). TextSpan explains the model through
    heads with roles: at least 6 late heads with >= 80% of their texts about one property, covering >= 3 properties,
    and each of those roles confirmed by the scenes (confirmed_role_heads: the property explains >= 80% of the head's
    output variance, head_property_shares on n_scenes one-object scenes). `holds_by_texts`: the bar on the texts alone.
    `ceiling`: per property, the share of its texts a head about that property alone gets from the same pool
    (textspan.toy_role_ceiling); `reachable`: the properties whose ceiling meets the 0.8 bar.
    Taught in: notebook 08, "Each method's premise, measured before any ranking".
    """
    if model is None:
        model, _ = load_toyclip("cpu")
    model = model.float().eval()
    size = vit_visual(model, "premises").input_resolution  # the toy scenes drawn at the model's own resolution
    test = tw.ToyShapes(train=False, n=n_images, size=size)
    items = [test[i] for i in range(len(test))]  # each scene drawn once
    images = to_input(pil_batch(image for image, _ in items)).to(next(model.parameters()).device)
    labels = torch.tensor([label for _, label in items])
    readout = readout_accuracy(model, images, labels, class_embeddings(model))
    roles = toy_head_roles(n_scenes, model=model)
    heads = role_heads(roles)
    properties = sorted({roles[h]["property"] for h in heads})
    confirmed = confirmed_role_heads(roles, head_property_shares(model, n_scenes))
    confirmed_properties = sorted({roles[h]["property"] for h in confirmed})
    ceiling = toy_role_ceiling(model)  # per property, the share a head about it alone would get from the same pool
    need_heads, need_props = TEXTSPAN_PREMISE
    return dict(legrad=dict(holds=readout["token_mean"][-1] >= LEGRAD_PREMISE,
                            token_mean_top1_last_block=round(readout["token_mean"][-1], 4),
                            cls_top1=round(readout["cls"], 4), bar=LEGRAD_PREMISE),
                textspan=dict(holds=len(confirmed) >= need_heads and len(confirmed_properties) >= need_props,
                              holds_by_texts=len(heads) >= need_heads and len(properties) >= need_props,
                              role_heads=heads, properties=properties, confirmed_heads=confirmed,
                              confirmed_properties=confirmed_properties,
                              bar=f">= {need_heads} heads, >= {need_props} properties, confirmed by the scenes",
                              ceiling={p: c["share"] for p, c in ceiling.items()},
                              reachable=[p for p, c in ceiling.items() if c["share"] >= ROLE_BAR]))


PROMPT_BLIND = ("centre_prior", "random_map", "raw_attention", "rollout")  # maps that never read the prompt


def chance_level(results: dict, score: str = "pointing_game") -> float:
    """The best `score` of the prompt-blind maps scored in `results` (PROMPT_BLIND): what a map gets without reading
    the prompt. raw_attention and rollout see the image, so they find *an* object; the other two don't even do that.

    Taught in: notebook 08, "The measured table, fair by construction".
    """
    blind = [results[m][score] for m in PROMPT_BLIND if m in results]
    if not blind:
        raise ValueError(f"chance_level: score at least one prompt-blind map ({', '.join(PROMPT_BLIND)}) with compare.")
    return max(blind)


def verdict(results: dict, checked: dict, score: str = "pointing_game") -> str:
    """One sentence ranking TextSpan and LeGrad on `score`, or why there is no verdict.

    No ranking where either premise fails: a method whose premise fails on this model measures the model, not itself.
    Compares the best normalisation of each (both are in FAIR_METHODS), and both against the measured chance
    (chance_level: the best prompt-blind map that was scored).
    Taught in: notebook 08, "The measured table, fair by construction".
    """
    failed = [m for m in ("legrad", "textspan") if not checked[m]["holds"]]
    if failed:
        why = {"legrad": f"LeGrad's (the token-mean readout classifies at "
                         f"{checked['legrad']['token_mean_top1_last_block']:.0%}, below {LEGRAD_PREMISE:.0%})",
               "textspan": f"TextSpan's ({_count(len(checked['textspan']['confirmed_heads']), 'confirmed role head')} "
                           f"over {_count(len(checked['textspan']['confirmed_properties']), 'property')}; "
                           f"needs {checked['textspan']['bar']})"}
        return "No verdict: " + " and ".join(why[m] for m in failed) + " premise fails on this model."
    scored = {name: [m for m in results if m.startswith(name) and m not in DIAGNOSES] for name in ("textspan", "legrad")}
    if not any(m in results for m in ("centre_prior", "random_map")) or not all(scored.values()):
        return "No verdict: score both methods and the chance maps (centre_prior, random_map) together."
    chance = chance_level(results, score)
    best = {name: max(methods, key=lambda m: results[m][score]) for name, methods in scored.items()}
    (a, ra), (b, rb) = sorted(((m, results[m][score]) for m in best.values()), key=lambda x: -x[1])
    if rb <= chance:
        return f"{a} ({ra:.3f}) is above chance ({chance:.3f}) on {score}; {b} ({rb:.3f}) is not. Both premises hold."
    return f"{a} ({ra:.3f}) ahead of {b} ({rb:.3f}) on {score}; chance measured at {chance:.3f}; both premises hold."


def _count(n: int, noun: str) -> str:
    return f"{n} {noun if n == 1 else (noun[:-1] + 'ies' if noun.endswith('y') else noun + 's')}"


def table(results: dict) -> str:
    """The results of `compare` as a fixed-width text table, one row per method.

    Taught in: notebook 08, "The measured table, fair by construction".
    """
    width = max(len("method"), *(len(m) for m in results))
    lines = [f"{'method':<{width}} {'pointing':>8} {'miss: other obj':>15} {'miss: bg':>8} {'mIoU':>6} {'mAP':>6} "
             f"{'ms/map':>7}  objects"]
    for m, r in results.items():
        lines.append(f"{m:<{width}} {r['pointing_game']:>8.3f} {r['misses_on_other_object']:>15.3f} "
                     f"{r['misses_on_background']:>8.3f} {r['miou']:>6.3f} {r['map']:>6.3f} "
                     f"{1000 * r['seconds_per_map']:>7.2f}  {r['objects']}")
    return "\n".join(lines)


# ---- peak memory, measured in a fresh process per method ---------------------------------------------------
def _memory_child(method: str, arch: str, n_prompts: int) -> dict:
    """Runs in the child: build the model, reset the peak, make the maps once, report the extra peak."""
    torch.set_num_threads(1)
    model = load_toyclip("cpu")[0].float() if arch == "toy" else random_clip(arch).float()
    visual = vit_visual(model, "memory")
    r = visual.input_resolution
    image = torch.randn(3, r, r, generator=torch.Generator().manual_seed(0))
    prompts = F.normalize(torch.randn(n_prompts, visual.proj.shape[1], generator=torch.Generator().manual_seed(1)), dim=-1)
    if method == "legrad_torch":
        run = legrad_torch_maps(model, layer_index=-2)
        fn = lambda: run(image, prompts)  # noqa: E731
    else:
        fn = lambda: method_maps(method, model, image, prompts, list(range(n_prompts)), prompts)  # noqa: E731
    try:  # Linux: reset VmHWM to the current RSS, forgetting the model build's own peak
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return dict(method=method, peak_extra_mb=None)
    before = proc_status_kb("VmRSS")  # model built and every import done; nothing of the method has run yet
    fn()  # the first call: after a warm-up the allocator would keep the peak's memory and hide it from VmHWM
    peak = proc_status_kb("VmHWM")
    if peak is None or before is None:
        return dict(method=method, peak_extra_mb=None)
    return dict(method=method, peak_extra_mb=round(max(0, peak - before) / 1024, 1))


def peak_memory_mbs(methods, arch: str = "toy", n_prompts: int = 5, timeout: float = 300) -> dict:
    """{method: extra resident memory (MiB) one call of it needs}, each measured in its own fresh process (None off
    Linux). The processes run at the same time: each reads only its own peak, and most of their time is imports.

    Taught in: notebook 08, "Time and memory per map".
    """
    children = {method: subprocess.Popen([sys.executable, "-m", "course_utils.compare_maps", "--memory-child", method,
                                          "--arch", arch, "--prompts", str(n_prompts)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for method in methods}
    results = {}
    try:
        for method, proc in children.items():
            stdout, stderr = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise RuntimeError(f"peak_memory_mb({method!r}, {arch!r}) failed:\n{stderr[-2000:]}")
            results[method] = json.loads(stdout.strip().splitlines()[-1])["peak_extra_mb"]
    finally:
        for proc in children.values():  # after a failure or a timeout, don't leave the others running
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def peak_memory_mb(method: str, arch: str = "toy", n_prompts: int = 5, timeout: float = 300) -> float | None:
    """Extra resident memory (MiB) one call of `method` needs, measured in a fresh process (None off Linux).

    Taught in: notebook 08, "Time and memory per map" (through peak_memory_mbs, which measures several at once).
    """
    return peak_memory_mbs([method], arch, n_prompts, timeout)[method]


def main(argv=None) -> int:
    """The command line: print the table and a JSON line (or, with --memory-child, one method's peak memory).

    Used by: python -m course_utils.compare_maps, peak_memory_mbs (its child processes) and the tests.
    """
    parser = argparse.ArgumentParser(description="Score TextSpan, LeGrad and attention baselines on toy-world masks.")
    parser.add_argument("--scenes", type=int, default=N_SCENES, help="two-object scenes (two maps each)")
    parser.add_argument("--methods", nargs="+", default=list(FAIR_METHODS), choices=ALL_METHODS,
                        help="default: both methods under both normalisations, and the two chance maps")
    parser.add_argument("--memory-child", choices=METHODS + ("legrad_torch",), help=argparse.SUPPRESS)
    parser.add_argument("--arch", default="toy", help=argparse.SUPPRESS)
    parser.add_argument("--prompts", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        print(json.dumps(_memory_child(args.memory_child, args.arch, args.prompts)))
        return 0
    torch.manual_seed(0)
    results = compare(n_scenes=args.scenes, methods=tuple(args.methods))
    print(table(results))
    checked = premises()
    print(f"\nLeGrad's premise: last block's token-mean readout top-1 {checked['legrad']['token_mean_top1_last_block']:.3f}"
          f" (bar {LEGRAD_PREMISE}): {'holds' if checked['legrad']['holds'] else 'FAILS'}")
    ts = checked["textspan"]
    print(f"TextSpan's premise: {len(ts['role_heads'])} role heads over {ts['properties']} by their texts, "
          f"{len(ts['confirmed_heads'])} over {ts['confirmed_properties']} confirmed by the scenes ({ts['bar']}): "
          f"{'holds' if ts['holds'] else 'FAILS'}")
    print(verdict(results, checked))
    print(json.dumps({m: {k: r[k] for k in ("pointing_game", "miou", "map", "seconds_per_map", "misses_on_other_object",
                                            "misses_on_background")} for m, r in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
