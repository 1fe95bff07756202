"""ToyCLIP: train and evaluate the course's small openai `clip.model.CLIP` on the toy world (bundled in data/).

    python -m course_utils.toyclip train      # reproduces data/toyclip.pt from a fixed seed
    python -m course_utils.toyclip evaluate   # prints a table; its last line is one JSON object

Its architecture is `models.ARCHITECTURES["ToyCLIP"]`: the same class as ViT-B/32, only smaller, with the real
vocabulary (49,408 BPE tokens) and context (77), so `clip.tokenize` and `clip.model.build_model` work unchanged.
The loss is notebook 02's (`contrastive.clip_loss`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import os
import sys
import time
from pathlib import Path

import einops
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import assets
from . import toyworld as tw
from .ablation import mean_ablate
from .compare_maps import premises
from .contrastive import clip_loss, similarity_logits
from .data import pil_batch, to_input
from .decompose import head_contributions
from .heatmaps import relative_to_prompts, token_maps
from .inside_vit import patch_tokens
from .legrad import relevance_from_grad, token_mean_embedding
from .metrics import peak_share, pointing_hit, standard_tolerance
from .models import ARCHITECTURE_KEY, ARCHITECTURES, TOYCLIP, build, clip, load_clip
from .report import print_result
from .zero_shot import PROMPT_TEMPLATE, cosine_logits, encode_text_short, readable, topk_accuracy, zero_shot_classifier

CHECKPOINT = assets.local_path("toyclip")  # data/toyclip.pt
TRAIN_CONTEXT = 48  # captions are <= 38 tokens; causal text attention makes later positions irrelevant


def patch_labels(scene: tw.Scene, patch: int, background: bool = False) -> np.ndarray:
    """[grid * grid] int16: per patch (row-major, the order of the patch tokens), the class of the object covering at
    least half of its pixels, or -1 where none does (background, or an object's edge). With `background`, a patch
    that no object touches gets its background's label instead: len(tw.CLASSES) + its index in tw.BACKGROUNDS, the
    row of BACKGROUND_PROMPT's texts after the 100 class prompts (train's background_patches).

    Used by: make_training_set (the targets of train's aux_patches objective) and notebook 04, "Where does the CLS token look?".
    """
    side = scene.image.size[0] // patch
    labels = np.full(side * side, -1, dtype=np.int16)
    touched = np.zeros(side * side, dtype=bool)
    for obj in scene.objects:
        cover = obj.mask.reshape(side, patch, side, patch).mean(axis=(1, 3)).reshape(-1)  # [grid * grid]
        labels[cover >= 0.5] = obj.label
        touched |= cover > 0
    if background:
        labels[~touched] = len(tw.CLASSES) + list(tw.BACKGROUNDS).index(scene.background)
    return labels


BACKGROUND_PROMPT = "a photo of a {} background."  # train's background_patches: one text per tw.BACKGROUNDS


def twin_pair(rng: np.random.Generator, n_objects: int) -> list[tw.Scene]:
    """Two scenes with the same objects (colours, shapes) and background that differ in one property, position or
    size, and whose captions both name it: "a small red circle" / "a large red circle".

    In a batch of unrelated scenes, colour and shape alone tell every caption apart, so nothing makes the model learn
    the other words. A twin in the same batch does (tried for ToyCLIP v2 and not kept: see data/README.md).

    Used by: make_training_set (twin_fraction).
    """
    objects = tw.random_objects(rng, n_objects)
    background = list(tw.BACKGROUNDS)[rng.integers(len(tw.BACKGROUNDS))]
    change = ("position", "size")[rng.integers(2)]
    twin = [dict(o) for o in objects]
    if change == "size":
        for o in twin:
            o["size"] = "large" if o["size"] == "small" else "small"
    else:  # every object to another region
        free = [r for r in tw.POSITIONS_LIST if r not in [tuple(o["region"]) for o in objects]]
        regions = [tuple(o["region"]) for o in objects]
        moved = regions[1:] + regions[:1] if n_objects > 1 else [free[rng.integers(len(free))]]
        if n_objects > 1 and free and rng.random() < 0.5:
            moved[0] = free[rng.integers(len(free))]
        for o, r in zip(twin, moved):
            o["region"] = r
    rates = {**tw.CAPTION_RATES, change: 1.0}
    pair = []
    for objs in (objects, twin):
        scene = tw.draw_scene(objs, background, seed=int(rng.integers(2**31)), caption="")
        scene.caption = tw.describe(scene, rng, rates)
        pair.append(scene)
    return pair


def foil_caption(scene: tw.Scene, rng: np.random.Generator) -> tuple[str, str]:
    """(caption, foil): a fresh caption of `scene` and the same sentence about a scene that differs in one property
    the caption names, size, position or pattern ("a small red circle" / "a large red circle"), or "" when it names
    none of them.

    A foil is a hard negative: in a batch of unrelated scenes, colour and shape alone tell every caption apart, so
    nothing makes the image embedding carry size, position or pattern. Its own caption's foil does. The foil changes
    one object: its size flips, its pattern changes, or it moves to another region (swapping with the object there,
    so the scene stays possible and the words must bind to the right object).
    Used by: make_training_set (foils) and tests/test_toyclip.py.
    """
    state = rng.bit_generator.state
    with_size = rng.random() < tw.CAPTION_RATES["size"]  # describe's own first two draws, peeked
    with_pos = rng.random() < tw.CAPTION_RATES["position"]
    with_pat = rng.random() < tw.CAPTION_RATES["pattern"]
    caption = describe_from(scene, rng, state)
    changes = [c for c, named in (("size", with_size), ("position", with_pos), ("pattern", with_pat)) if named]
    if not changes:
        return caption, ""
    after = np.random.default_rng(rng.integers(2**31))
    change = changes[after.integers(len(changes))]
    objects = list(scene.objects)
    i = int(after.integers(len(objects)))
    if change == "size":
        objects[i] = dataclasses.replace(objects[i], size="large" if objects[i].size == "small" else "small")
    elif change == "pattern":
        others = [p for p in tw.PATTERNS if p != objects[i].pattern]
        objects[i] = dataclasses.replace(objects[i], pattern=others[after.integers(len(others))])
    else:
        others = [r for r in tw.POSITIONS_LIST if r != objects[i].region]
        region = others[after.integers(len(others))]
        for m, o in enumerate(objects):
            if o.region == region:  # swap with the object already there
                objects[m] = dataclasses.replace(o, region=objects[i].region)
        objects[i] = dataclasses.replace(objects[i], region=region)
    foil = describe_from(dataclasses.replace(scene, objects=objects), rng, state)
    return caption, foil


PROPERTY_TEMPLATES = {  # property_caption's sentences: worded unlike the toy pool that notebook 06 reads heads with
    "colour": ("a {} thing", "a picture with something {} in it"),
    "shape": ("a {} drawn", "a picture with a {} in it"),
    "size": ("a {} thing", "a picture with something {} in it"),
    "position": ("a thing at the {}", "a picture with something at the {}"),
    "count": ("{}", "a picture of {}"),  # "one thing", "three things"
    "pattern": ("a {} thing", "a picture with something {} in it"),
}


def property_caption(scene: tw.Scene, rng: np.random.Generator) -> tuple[str, str]:
    """(property, caption): a caption that names one property of `scene` and nothing else, "a thing at the top left"
    or "three things", drawn uniformly over colour, shape, size, position, pattern (of one random object) and count.

    Full captions always name colour and shape, and those two alone tell almost every pair of scenes apart, so the
    image embedding spends little of itself on the rest. A caption that names only size, position, pattern or count
    can only be matched by an embedding that carries that property on its own.
    Used by: make_training_set (property_captions) and tests/test_toyclip.py.
    """
    prop = list(PROPERTY_TEMPLATES)[rng.integers(len(PROPERTY_TEMPLATES))]
    obj = scene.objects[rng.integers(len(scene.objects))]
    value = dict(colour=obj.color, shape=obj.shape, size=obj.size, position=obj.position, pattern=obj.pattern,
                 count=f"{tw.COUNT_WORDS[len(scene.objects)]} thing{'s' if len(scene.objects) > 1 else ''}")[prop]
    templates = PROPERTY_TEMPLATES[prop]
    return prop, templates[rng.integers(len(templates))].format(value)


def describe_from(scene: tw.Scene, rng: np.random.Generator, state: dict) -> str:
    """toyworld.describe with the generator first reset to `state` (same draws, so the same template and order).

    Used by: foil_caption.
    """
    rng.bit_generator.state = state
    return tw.describe(scene, rng)


COUNTED_PROPERTIES = dict(colour=list(tw.COLORS), shape=list(tw.SHAPES), pattern=list(tw.PATTERNS),
                          size=list(tw.SIZES), position=list(tw.POSITIONS.values()))  # make_training_set's counts


def value_counts(scene: tw.Scene) -> np.ndarray:
    """[all values of COUNTED_PROPERTIES, in its order]: how many of the scene's objects have each value.

    Used by: make_training_set (the targets of train's head objective).
    """
    words = dict(colour=lambda o: o.color, shape=lambda o: o.shape, pattern=lambda o: o.pattern,
                 size=lambda o: o.size, position=lambda o: o.position)
    return np.concatenate([np.bincount([values.index(words[p](o)) for o in scene.objects], minlength=len(values))
                           for p, values in COUNTED_PROPERTIES.items()])


def _draw(args):
    seed, lo, hi, single_fraction, twin_fraction, patch, foils, property_captions, background_patches = args
    images = np.empty((hi - lo, 3, tw.IMAGE_SIZE, tw.IMAGE_SIZE), dtype=np.uint8)
    captions, foil_texts, labels, counted = [], [], [], []
    for j in range(lo // 2, hi // 2):  # scenes 2j and 2j + 1 depend on (seed, j) alone
        rng = np.random.default_rng([seed, j])
        counts = [1 if rng.random() < single_fraction else (2 if rng.random() < 0.7 else 3) for _ in range(2)]
        if rng.random() < twin_fraction:
            pair = twin_pair(rng, counts[0])
        else:
            pair = [tw.random_scene(seed * 10_000_000 + 2 * j + k, n_objects=counts[k]) for k in range(2)]
        for k, scene in enumerate(pair):
            images[2 * j + k - lo] = np.asarray(scene.image).transpose(2, 0, 1)
            caption, foil = (foil_caption(scene, np.random.default_rng([seed, j, k, 1])) if foils
                             else (scene.caption, ""))
            if property_captions:  # its own generator: the other draws, and so the default recipe, stay the same
                own = np.random.default_rng([seed, j, k, 2])
                if own.random() < property_captions:
                    caption, foil = property_caption(scene, own)[1], ""
            captions.append(caption)
            foil_texts.append(foil)
            labels.append(patch_labels(scene, patch, background=background_patches))
            counted.append(value_counts(scene))
    return images, captions, foil_texts, np.stack(labels), np.stack(counted)


def make_training_set(n: int, seed: int = 0, single_fraction: float = 0.5, twin_fraction: float = 0.0,
                      workers: int = 1, patch: int = 8, foils: bool = False, property_captions: float = 0.0,
                      background_patches: bool = False):
    """Draw `n` scenes once (PIL is slow): uint8 images [n, 3, H, W], tokens [n, TRAIN_CONTEXT], patch labels
    [n, grid * grid] (see patch_labels), foil tokens [n, TRAIN_CONTEXT] (all zero where a scene has no foil, and
    everywhere unless `foils`; see foil_caption) and value counts [n, values] (float; see value_counts). `property_captions` of the captions name one property only
    (property_caption; they have no foil). Scenes come in pairs (2j, 2j + 1); `twin_fraction` of the pairs are
    twins (see twin_pair). The scenes are the same whatever `workers` is (processes drawing in parallel).
    `background_patches`: the patch labels mark untouched patches with their background (patch_labels).

    Used by: train.
    """
    if n % 2:
        raise ValueError(f"make_training_set: n={n} scenes, but scenes come in pairs; use an even number.")
    chunks = [(seed, lo, min(n, lo + 2000), single_fraction, twin_fraction, patch, foils, property_captions,
               background_patches) for lo in range(0, n, 2000)]
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            parts = list(tqdm(pool.imap(_draw, chunks), total=len(chunks), desc="drawing scenes", mininterval=5))
    else:
        parts = [_draw(c) for c in tqdm(chunks, desc="drawing scenes", mininterval=5)]
    images = np.concatenate([p[0] for p in parts])
    tokens = clip.tokenize([c for p in parts for c in p[1]])
    foil_tokens = torch.zeros_like(tokens)
    if foils:
        foil_tokens = clip.tokenize([c for p in parts for c in p[2]])
        foil_tokens[torch.tensor([not c for p in parts for c in p[2]])] = 0  # no foil: no tokens at all
    assert (tokens[:, TRAIN_CONTEXT:] == 0).all() and (foil_tokens[:, TRAIN_CONTEXT:] == 0).all(), \
        "a caption is longer than TRAIN_CONTEXT tokens"
    labels = np.concatenate([p[3] for p in parts])
    counts = torch.from_numpy(np.concatenate([p[4] for p in parts])).float()  # [n, values]
    return (torch.from_numpy(images), tokens[:, :TRAIN_CONTEXT].clone(), torch.from_numpy(labels).long(),
            foil_tokens[:, :TRAIN_CONTEXT].clone(), counts)


def foil_clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, foil_emb: torch.Tensor | None,
                   logit_scale) -> torch.Tensor:
    """Notebook 02's symmetric InfoNCE, with the foils [F, d] as extra captions that every image must rank below its
    own: image i picks caption i among the B captions and F foils; caption i picks image i among the B images.
    Without foils (None) it is clip_loss itself.

    Used by: train.
    """
    if foil_emb is None:
        return clip_loss(image_emb, text_emb, logit_scale)
    logits = similarity_logits(image_emb, torch.cat([text_emb, foil_emb]), logit_scale)  # [B, B + F]
    target = torch.arange(len(image_emb), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits[:, : len(text_emb)].T, target)) / 2


def image_readouts(model, images: torch.Tensor, patch_blocks: int = 1, head_blocks: int = 0):
    """One forward pass read three ways: model.encode_image(images) [B, d]; the last block's token-mean readout
    (LeGrad's, unit length) [B, d]; and every patch token through ln_post and proj, after each of the last
    `patch_blocks` blocks [k, B, grid * grid, d] (the last block's first). With `head_blocks` = k > 0, the last k
    blocks run through block_with_heads and four more come back: each head's CLS update [k, B, H, D], the final
    CLS token [B, D], CLS's attention [k, B, H, N], and per block (block, residual after attention [N, B, D], values
    [B, H, N, e], output [N, B, D]), what legrad_relevance reads.

    Used by: train, for the auxiliary objectives (aux_token_mean, aux_patches, patch_blocks, aux_heads, aux_legrad).
    """
    visual = model.visual
    x = patch_tokens(visual, images).permute(1, 0, 2)  # [N, B, D]: openai's blocks take the sequence first
    blocks = visual.transformer.resblocks
    outputs, heads, looks, inside = [], [], [], []
    for i, block in enumerate(blocks):
        if i >= len(blocks) - head_blocks:
            x, (h, a, mid, v) = block_with_heads(block, x)
            heads.append(h)
            looks.append(a)
            inside.append((block, mid, v, x))
        else:
            x = block(x)
        outputs.append(x)
    x = x.permute(1, 0, 2)  # [B, N, D]
    if head_blocks:
        return embedding_etc(visual, x, outputs, patch_blocks) + (torch.stack(heads), x[:, 0], torch.stack(looks),
                                                                  inside)
    return embedding_etc(visual, x, outputs, patch_blocks)


def embedding_etc(visual, x, outputs, patch_blocks):
    """image_readouts' three readings of the final tokens x [B, N, D] and of the blocks' outputs [N, B, D] each.

    Used by: image_readouts.
    """
    embedding = visual.ln_post(x[:, 0]) @ visual.proj  # [B, d]: what encode_image returns
    token_mean = token_mean_embedding(x, visual.ln_post.weight, visual.ln_post.bias, visual.proj, visual.ln_post.eps)
    patches = torch.stack([visual.ln_post(out[1:].permute(1, 0, 2)) @ visual.proj
                           for out in outputs[::-1][:patch_blocks]])  # [k, B, P, d]
    return embedding, token_mean, patches


def block_with_heads(block, x: torch.Tensor):
    """One residual block of the image tower, computed by hand so that each head's output at CLS is kept:
    returns (the block's output [N, B, D], (per-head CLS outputs through the output projection [B, H, D], CLS's
    attention over the tokens [B, H, N], the residual after attention [N, B, D], each head's values [B, H, N, e])).

    Used by: image_readouts (head_blocks), for train's aux_heads and aux_legrad.
    """
    attn = block.attn
    N, B, D = x.shape
    H = attn.num_heads
    h = block.ln_1(x)
    q, k, v = (h @ attn.in_proj_weight.T + attn.in_proj_bias).chunk(3, dim=-1)  # [N, B, D] each
    q, k, v = (einops.rearrange(t, "n b (h e) -> b h n e", h=H) for t in (q, k, v))
    o = F.scaled_dot_product_attention(q, k, v)  # [B, H, N, e]
    out = einops.rearrange(o, "b h n e -> n b (h e)") @ attn.out_proj.weight.T + attn.out_proj.bias
    W = einops.rearrange(attn.out_proj.weight, "D (h e) -> h e D", h=H)
    heads = torch.einsum("bhe,heD->bhD", o[:, :, 0], W)  # [B, H, D]: each head's share of the CLS update
    look = (q[:, :, :1] @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).softmax(-1)[:, :, 0]  # [B, H, N]: CLS's attention
    mid = x + out
    return mid + block.mlp(block.ln_2(mid)), (heads, look, mid, v)


HEAD_ROLES = {  # aux_heads: which head of each of the last two blocks is trained for which property (6, 7: free)
    0: "colour", 1: "colour", 2: "shape", 3: "shape", 4: "pattern", 5: "pattern"}


def head_loss(heads: torch.Tensor, final_cls: torch.Tensor, visual, counts: dict, role_text: dict, logit_scale,
              looks: torch.Tensor, patch_labels: torch.Tensor, purity: float = 2.0, truth: float = 2.0,
              look: float = 1.0, apart: float = 0.0) -> torch.Tensor:
    """The head objective, averaged over the roles of HEAD_ROLES (in each of the k last blocks). Its five terms:

    - naming: heads [k, B, H, D] (block_with_heads) read as direct contributions to the embedding (ln_post's scale at
      the final CLS, then proj) and centred over the batch, each role head must name the values of its property in
      the scene among role_text[p] [V, d] (unit, centred over the V values): cross-entropy against the scene's
      share of each value, counts[p] [B, V] (objects per value) normalised;
    - purity (weight `purity`): the share of that contribution outside the span of role_text[p];
    - truth (weight `truth`): 1 - R² of the contribution fitted from counts[p] on the batch's one-object scenes (the
      training-time twin of textspan.head_property_shares: over several objects every property's counts also carry
      the number of objects, which a head can learn instead);
    - look (weight `look`): 1 - the share of the CLS token's attention, looks [k, B, H, N], on patches that an object
      covers at least half of (patch_labels [B, N - 1] >= 0; scenes without one are left out);
    - apart (weight `apart`): the share of the contribution inside each other role property's span, averaged over
      those properties (a pattern head inside the pattern words' span can still lie along shape words where the two
      spans overlap, and TextSpan then names it by shape texts).

    Used by: train (aux_heads).
    """
    sigma = (final_cls.var(dim=-1, unbiased=False, keepdim=True) + visual.ln_post.eps).sqrt().detach()  # [B, 1]
    c = heads - heads.mean(dim=-1, keepdim=True)
    c = (c / sigma[None, :, None]) * visual.ln_post.weight  # [k, B, H, D]
    c = c @ visual.proj  # [k, B, H, d]
    c = c - c.mean(dim=1, keepdim=True)
    unit = F.normalize(c, dim=-1)
    losses = []
    bases = {p: torch.linalg.svd(t.detach().T, full_matrices=False)[0][:, : t.shape[0] - 1]  # [d, V - 1] each
             for p, t in role_text.items()}
    on = (patch_labels >= 0).float()  # [B, N - 1]: patches an object covers at least half of
    seen = on.sum(1) > 0  # [B]
    for h, prop in HEAD_ROLES.items():
        t = role_text[prop]
        logits = logit_scale.exp() * unit[:, :, h] @ t.T  # [k, B, V]
        share = counts[prop] / counts[prop].sum(1, keepdim=True)  # [B, V]
        losses.append(-(share[None] * logits.log_softmax(-1)).sum(-1).mean())
        if purity:
            basis = bases[prop]  # [d, V - 1]: the values' centred text span
            ch = c[:, :, h]  # [k, B, d]
            outside = ch - (ch @ basis) @ basis.T
            losses.append(purity * (outside ** 2).sum(dim=(1, 2)).div((ch ** 2).sum(dim=(1, 2))).mean())
        if apart:
            ch = c[:, :, h]  # [k, B, d]
            others = [q for q in bases if q != prop]
            inside = sum(((ch @ bases[q]) ** 2).sum(dim=(1, 2)) for q in others) / len(others)  # [k]
            losses.append(apart * inside.div((ch ** 2).sum(dim=(1, 2))).mean())
        single = counts[prop].sum(1) == 1  # [B]
        if truth and single.sum() > counts[prop].shape[1]:  # more one-object scenes than values: a fit that can fail
            X = counts[prop][single] - counts[prop][single].mean(0)  # [b, V]
            ch = c[:, single, h] - c[:, single, h].mean(dim=1, keepdim=True)  # [k, b, d]
            fit = X @ (torch.linalg.pinv(X) @ ch)  # [k, B, d]: least-squares fit from the property's counts
            losses.append(truth * (1 - (fit ** 2).sum(dim=(1, 2)) / (ch ** 2).sum(dim=(1, 2))).mean())
        if look and seen.any():
            mass = (looks[:, :, h, 1:] * on[None]).sum(-1)  # [k, B]
            losses.append(look * (1 - mass[:, seen]).mean())
    return sum(losses) / len(HEAD_ROLES)


LEGRAD_IMAGES = 16  # train's aux_legrad reads LeGrad's relevance on this many images of each batch (its cost)


def layer_norm_vjp(x: torch.Tensor, norm, w: torch.Tensor) -> torch.Tensor:
    """w [.., D] pulled back through the LayerNorm `norm` at its inputs x [.., D] (shapes broadcast): the gradient of
    (norm(x) . w) with respect to x, written out so that it can itself be trained.

    Used by: legrad_relevance.
    """
    mu = x.mean(dim=-1, keepdim=True)
    sigma = (x.var(dim=-1, unbiased=False, keepdim=True) + norm.eps).sqrt()
    xhat = (x - mu) / sigma
    w = w * norm.weight
    return (w - w.mean(dim=-1, keepdim=True) - xhat * (w * xhat).mean(dim=-1, keepdim=True)) / sigma


def smooth_relu(x: torch.Tensor, sharpness: float, dims) -> torch.Tensor:
    """A ReLU with a gradient below zero: softplus at the scale of x itself, s / k * softplus(k x / s), where s is the
    mean |x| over `dims` (held fixed in the backward pass) and k = sharpness. It tends to max(x, 0) as k grows, and
    scaling x scales it (so a loss on shares of it does not depend on the size of LeGrad's gradients). Far below zero
    it is about s / k * exp(k x / s): a share of it is then a softmax over the entries, so it still says which entry
    should rise when every entry is negative, where ReLU's share is 0 / 0 and has no gradient.

    Used by: legrad_relevance (train's legrad_smooth).
    """
    s = x.detach().abs().mean(dim=dims, keepdim=True).clamp_min(1e-30)
    return F.softplus(x * (sharpness / s)) * (s / sharpness)


def legrad_relevance(visual, block, mid: torch.Tensor, values: torch.Tensor, out: torch.Tensor, texts: torch.Tensor,
                     image_of: torch.Tensor, smooth: float = 0.0) -> torch.Tensor:
    """LeGrad's relevance at one block (course_utils.legrad, before the sum over blocks, upsampling and min-max)
    for M (image, prompt) pairs, computed without autograd so that a loss on it trains with one backward pass.

    mid [N, B, D] (the residual after attention), values [B, H, N, e] and out [N, B, D] (the block's output) come
    from block_with_heads; texts [M, d] (unit) and image_of [M] (the image of each pair) -> [M, N - 1].
    LeGrad's score s = normalise(ln_post(mean over tokens of out) @ proj) . t is a function of the mean token, so its
    gradient g [M, D] is the same at every token's output; through the MLP's residual branch it becomes g_i at token
    i; and the gradient with respect to head h's attention from token i to token j is g_i . (v_j W_O,h).
    Checked against course_utils.legrad (tests/test_toyclip.py). smooth > 0 replaces LeGrad's ReLU by
    smooth_relu with that sharpness (per pair, over heads and both token axes): a training surrogate, not LeGrad's map.

    Used by: legrad_loss.
    """
    mlp, H = block.mlp, values.shape[1]
    N = out.shape[0]
    pooled = out.mean(dim=0)[image_of]  # [M, D]
    e = visual.ln_post(pooled) @ visual.proj  # [M, d]
    unit = F.normalize(e, dim=-1)
    g = (texts - (unit * texts).sum(-1, keepdim=True) * unit) / e.norm(dim=-1, keepdim=True)  # [M, d]: ds/de
    g = layer_norm_vjp(pooled, visual.ln_post, g @ visual.proj.T) / N  # [M, D]: ds/d(each token's output)
    m = mid.permute(1, 0, 2)  # [B, N, D]
    a = block.ln_2(m) @ mlp.c_fc.weight.T + mlp.c_fc.bias  # [B, N, F]
    s = torch.sigmoid(1.702 * a)  # openai's QuickGELU, x sigmoid(1.702 x); its derivative below
    back = (g @ mlp.c_proj.weight)[:, None] * (s + 1.702 * a * s * (1 - s))[image_of]  # [M, N, F]
    g_i = g[:, None] + layer_norm_vjp(m[image_of], block.ln_2, back @ mlp.c_fc.weight)  # [M, N, D]: ds/d(mid_i)
    W = einops.rearrange(block.attn.out_proj.weight, "D (h e) -> h e D", h=H)
    g_ih = torch.einsum("miD,heD->mhie", g_i, W)  # [M, H, N, e]
    grad = g_ih @ values[image_of].transpose(-1, -2)  # [M, H, N, N]: d s / d A[h, i, j]
    if smooth:  # smooth_relu is >= 0, so relevance_from_grad's own ReLU then leaves it as it is
        grad = smooth_relu(grad, smooth, dims=(1, 2, 3))
    return relevance_from_grad(grad)  # LeGrad's ReLU, mean over heads and query rows, CLS key dropped


def legrad_loss(visual, inside: list, labels: torch.Tensor, class_text: torch.Tensor,
                smooth: float = 0.0) -> torch.Tensor:
    """1 - the share of LeGrad's relevance (summed over the blocks in `inside`, image_readouts' per-block tuples) that
    lies on the patches of the object its prompt names, averaged over every (image, class) pair with labelled patches.
    labels [B, P] (patch_labels, -1: no object; labels >= C, background_patches' backgrounds, count as none),
    class_text [C, d]. LeGrad's maps are absolute (one prompt, no comparison with the others), so relevance that every
    prompt puts on the background costs here. smooth: legrad_relevance's (0: LeGrad's ReLU).

    Used by: train (aux_legrad, legrad_smooth).
    """
    C = class_text.shape[0]
    labels = torch.where(labels < C, labels.long(), -1)
    present = torch.zeros(labels.shape[0], C + 1, dtype=torch.bool, device=labels.device)
    present.scatter_(1, labels + 1, True)  # column 0: "no object"
    image_of, cls = present[:, 1:].nonzero(as_tuple=True)  # [M] each
    texts = F.normalize(class_text[cls], dim=-1)
    relevance = sum(legrad_relevance(visual, block, mid, v, out, texts, image_of, smooth)
                    for block, mid, v, out in inside)
    on = (labels[image_of] == cls[:, None]).float()  # [M, P]
    return (1 - (relevance * on).sum(1) / relevance.sum(1).clamp_min(1e-12)).mean()


def patch_loss(patches: torch.Tensor, labels: torch.Tensor, class_text: torch.Tensor, logit_scale) -> torch.Tensor:
    """Cross-entropy of each labelled patch's readout [B, P, d] against the class prompts' embeddings [C, d]
    (labels [B, P], -1 = no object: ignored), at the model's temperature.

    Used by: train (aux_patches).
    """
    logits = logit_scale.exp() * F.normalize(patches, dim=-1) @ F.normalize(class_text, dim=-1).T  # [B, P, C]
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-1)


def train(steps: int = 3000, batch_size: int = 128, n_scenes: int = 120_000, lr: float = 1e-3, seed: int = 0,
          out: Path | None = CHECKPOINT, log_every: int = 100, eval_every: int = 500, threads: int | None = None,
          aux_token_mean: float = 1.0, aux_patches: float = 1.0, twin_fraction: float = 0.0, workers: int = 1,
          device: str = "cpu", foils: bool = True, property_captions: float = 0.15, background_patches: bool = False,
          patch_blocks: int = 1, centre_text: bool = False, aux_heads: float = 1.0, head_purity: float = 2.0,
          head_truth: float = 2.0, head_look: float = 1.0, head_apart: float = 0.0, head_text: bool = False,
          head_from: float = 0.5, aux_legrad: float = 0.0, legrad_smooth: float = 0.0, init: Path | None = None):
    """Train ToyCLIP from scratch; returns (model, list of losses). Deterministic for a given seed and machine.

    aux_token_mean > 0 adds that weight times the same contrastive loss on the last block's token-mean readout
    (LeGrad's reading of a block), so the patch tokens, not only CLS, come to carry the image's content, as they do
    in large CLIPs. aux_patches > 0 adds that weight times patch_loss: each patch token that lies on an object,
    read out like the image embedding, should match that object's class prompt ("a photo of a red circle.").
    twin_fraction: the share of scene pairs that are twins (make_training_set); a batch always holds whole pairs.
    foils: each caption that names size, position or pattern brings its foil (foil_caption), a hard negative that only
    an image embedding carrying that property can rank below the true caption (foil_clip_loss, on the CLS embedding).
    property_captions: the share of captions that name a single property (property_caption). The defaults are the
    bundled recipe; data/README.md gives each term's reason and the recipes tried. background_patches: the patch
    objective also reads each patch that no object touches as its background's prompt ("a photo of a black
    background.", BACKGROUND_PROMPT), so that background tokens stop reading as the objects' classes (tried, see
    data/README.md). patch_blocks: the patch objective reads the patch tokens after each of the last `patch_blocks`
    blocks (averaged), not only the last: LeGrad on the last two blocks reads both (tried, see data/README.md).
    centre_text: after the last step, centre_text_space (tried, see data/README.md).
    aux_heads > 0 adds that weight times head_loss, which trains six heads in each of the last two blocks to carry
    colour, shape or pattern (HEAD_ROLES) with its terms weighted head_purity, head_truth and head_look (see head_loss).
    head_from: the share of the steps after which the ground-truth and look terms count (before: naming and purity
    only; 0.5 of 3,000 steps is step 1,500, the bundled recipe: see data/README.md for why the order matters).
    aux_legrad > 0 adds that weight times legrad_loss: LeGrad's own relevance on the last two blocks, for each object's
    class prompt, should lie on that object's patches (on LEGRAD_IMAGES images of each batch; tried, see
    data/README.md). legrad_smooth > 0: that term reads LeGrad's relevance through smooth_relu of that sharpness
    instead of a ReLU, so that a map which is zero everywhere still has a gradient (tried, see data/README.md).
    init: start from this checkpoint's weights instead of random ones (a fine-tune; not the bundled recipe).
    `workers` processes draw the scenes (the same scenes for any number); `device` "cuda" trains on a GPU.

    Used by: python -m course_utils.toyclip train (it made data/toyclip.pt) and tests/test_toyclip.py.
    """
    n_blocks = ARCHITECTURES[TOYCLIP]["vision_layers"]
    if not 1 <= patch_blocks <= n_blocks:
        raise ValueError(f"train: patch_blocks={patch_blocks}, but ToyCLIP's image tower has {n_blocks} blocks; "
                         f"use 1 to {n_blocks}.")
    if not 0 <= head_from <= 1:
        raise ValueError(f"train: head_from={head_from}, but it is a share of the {steps} steps; use 0 to 1 "
                         f"(0.5, the bundled recipe: the ground-truth and look terms count from step {steps // 2}).")
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    images, tokens, labels, foil_tokens, counts = make_training_set(n_scenes, seed=seed, twin_fraction=twin_fraction,
                                                            workers=workers, foils=foils,
                                                            property_captions=property_captions,
                                                            background_patches=background_patches,
                                                            patch=ARCHITECTURES[TOYCLIP]["vision_patch_size"])
    has_foil = foil_tokens.any(dim=1)  # [n]
    print(f"drew {n_scenes} scenes in {time.perf_counter() - start:.0f}s")
    model = build(TOYCLIP, seed).train().to(device)
    if init is not None:
        model.load_state_dict(load_clip(init, device="cpu")[0].float().state_dict())
        model = model.train().to(device)
    role_values = {p: COUNTED_PROPERTIES[p] for p in sorted(set(HEAD_ROLES.values()))}
    role_tokens = {p: clip.tokenize([t.format(v) for v in vals for t in PROPERTY_TEMPLATES[p]])[:, :TRAIN_CONTEXT]
                   .to(device) for p, vals in role_values.items()}  # [V * templates, ctx]: the words the heads name
    prompts = [PROMPT_TEMPLATE.format(readable(c)) for c in tw.CLASSES]
    if background_patches:  # rows len(tw.CLASSES)... : the backgrounds, as patch_labels numbers them
        prompts += [BACKGROUND_PROMPT.format(b) for b in tw.BACKGROUNDS]
    class_tokens = clip.tokenize(prompts)[:, :TRAIN_CONTEXT].to(device)  # [C (+ 4), ctx]
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, steps // 20)
    truth_from = round(head_from * steps)  # the first step with the ground-truth and look terms
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    gen = torch.Generator().manual_seed(seed)
    losses = []
    bar = tqdm(range(steps), desc="training ToyCLIP", mininterval=10)
    for step in bar:
        pairs = torch.randint(0, n_scenes // 2, (batch_size // 2,), generator=gen)  # a batch holds whole pairs
        idx = torch.stack([2 * pairs, 2 * pairs + 1], dim=1).flatten()
        text = encode_text_short(model, tokens[idx].to(device))
        x = to_input(images[idx]).to(device)
        with_foil = idx[has_foil[idx]]
        foil = encode_text_short(model, foil_tokens[with_foil].to(device)) if len(with_foil) else None
        if aux_token_mean or aux_patches:
            if aux_heads or aux_legrad:
                embedding, token_mean, patches, heads, final_cls, looks, inside = image_readouts(
                    model, x, patch_blocks, head_blocks=2)
            else:
                embedding, token_mean, patches = image_readouts(model, x, patch_blocks)
            loss = foil_clip_loss(embedding, text, foil, model.logit_scale)
            if aux_token_mean:
                loss = loss + aux_token_mean * clip_loss(token_mean, text, model.logit_scale)
            target = labels[idx].to(device)
            if aux_patches or aux_legrad:
                with torch.no_grad():  # the class prompts as the text tower reads them now: targets, not trained here
                    class_text = encode_text_short(model, class_tokens)  # [C (+ 4), d]
            if aux_patches:
                loss = loss + aux_patches * sum(patch_loss(p, target, class_text, model.logit_scale)
                                                for p in patches) / len(patches)
            if aux_legrad:  # on the batch's first LEGRAD_IMAGES images only: on all 128 it would add half a step's time
                n = LEGRAD_IMAGES
                first = [(block, mid[:, :n], v[:n], out[:, :n]) for block, mid, v, out in inside]
                loss = loss + aux_legrad * legrad_loss(model.visual, first, target[:n], class_text[: len(tw.CLASSES)],
                                                         legrad_smooth)
            if aux_heads:
                with torch.set_grad_enabled(head_text):  # head_text: the role words learn from the heads too
                    role_text = {}
                    for p, toks in role_tokens.items():
                        t = F.normalize(encode_text_short(model, toks), dim=-1)
                        t = t.view(len(role_values[p]), -1, t.shape[-1]).mean(1)  # [V, d]: templates averaged
                        role_text[p] = F.normalize(t - t.mean(0), dim=-1)
                ends = np.cumsum([len(v) for v in COUNTED_PROPERTIES.values()]).tolist()
                batch_counts = counts[idx].to(device)  # [B, all values]
                split = {p: batch_counts[:, e - len(v):e] for (p, v), e in zip(COUNTED_PROPERTIES.items(), ends)}
                late = step >= truth_from  # head_from: the ground-truth and look terms count from here on
                loss = loss + aux_heads * head_loss(heads, final_cls, model.visual, split, role_text, model.logit_scale,
                                                    looks, labels[idx].to(device), head_purity,
                                                    head_truth if late else 0.0, head_look if late else 0.0, head_apart)
        else:
            loss = foil_clip_loss(model.encode_image(x), text, foil, model.logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        if (step + 1) % log_every == 0:
            bar.write(f"step {step + 1:5d}  loss {np.mean(losses[-log_every:]):.4f}  "
                      f"T={1 / model.logit_scale.exp().item():.4f}  {time.perf_counter() - start:.0f}s")
        if eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
            model.eval()
            top1, top5, _ = zero_shot(model, tw.ToyShapes(train=False, n=500))
            bar.write(f"step {step + 1:5d}  quick zero-shot on 500 test images: top-1 {top1:.3f}, top-5 {top5:.3f}")
            model.train()
    model = model.eval().cpu()
    if centre_text:
        print("centred the text space:", centre_text_space(model))
    if out is not None:
        save(model, out)
        print(f"saved {out} ({out.stat().st_size / 2**20:.1f} MiB) after {time.perf_counter() - start:.0f}s")
    return model, losses


@torch.no_grad()
def centre_text_space(model, classes=tw.CLASSES) -> dict:
    """Take the direction that every class prompt shares out of the text projection: P <- P (I - u u^T), with u the
    unit mean of the class prompts' embeddings ("a photo of a red star.", ...). Every text embedding loses its
    component along u; the class prompts' mean becomes (nearly) zero. Returns the mean's norm before and after.

    Why it is offered (data/README.md, "Centring the text space"): a component that all class prompts share adds
    almost the same logit to every class, so training hardly constrains it, yet LeGrad's absolute map differentiates
    it too, and in ToyCLIP it lights up every object. Tried, not in the bundled recipe.
    Used by: train (centre_text) and python -m course_utils.toyclip centre.
    """
    def class_mean() -> torch.Tensor:  # [d]: the mean of the unit class-prompt embeddings
        return zero_shot_classifier(model, classes).float().mean(dim=0)

    before = class_mean()
    u = before / before.norm()  # [d]
    P = model.text_projection  # [width, d]
    edited = P.float() - (P.float() @ u)[:, None] * u[None, :]  # P u = 0 afterwards
    P.copy_(edited.to(P.dtype))
    return dict(class_mean_norm_before=round(before.norm().item(), 4),
                class_mean_norm_after=round(class_mean().norm().item(), 4))


def save(model, path: Path) -> None:
    """fp16 state dict (openai's weights are fp16 too) with its architecture's name beside it.

    The file is {models.ARCHITECTURE_KEY: "ToyCLIP", "state_dict": ...}: the loader reads the name, not the
    tensor shapes, to know that the vision width splits into 8 heads. Read back with weights_only=True.
    Used by: train.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    torch.save({ARCHITECTURE_KEY: TOYCLIP, "state_dict": sd}, path)


# ---- evaluation ---------------------------------------------------------------------------------------------
@torch.inference_mode()
def zero_shot(model, dataset, batch_size: int = 500):
    """Top-1 and top-5 accuracy, and images/s of the image encoder on this machine.

    Taught in: notebook 02, "The course's ToyCLIP: openai's CLIP architecture, only smaller".
    """
    text = zero_shot_classifier(model, dataset.classes)  # [C, d], the course's one prompt
    device = next(model.parameters()).device
    logits, labels, seconds = [], [], 0.0
    for lo in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(lo, min(lo + batch_size, len(dataset)))]
        x = to_input(pil_batch(im for im, _ in items)).to(device)
        t0 = time.perf_counter()
        emb = model.encode_image(x)
        seconds += time.perf_counter() - t0
        logits.append(cosine_logits(emb, text).cpu())  # [b, C]
        labels.append(torch.tensor([lab for _, lab in items]))
    logits, labels = torch.cat(logits), torch.cat(labels)
    return topk_accuracy(logits, labels, 1).item(), topk_accuracy(logits, labels, 5).item(), len(dataset) / seconds


@torch.inference_mode()
def foil_preference(model, n_scenes: int = 600) -> dict:
    """Does the image embedding carry size, position and pattern? Per kind of foil, the share of scenes whose image is
    closer (cosine) to its caption than to the caption's foil (foil_caption), on toyworld.scenes(n_scenes); chance
    is 0.5.

    Used by: data/README.md (the foil-caption recipe) and tests/test_toyclip.py.
    """
    model = model.float().eval()
    scenes = tw.scenes(n_scenes, size=model.visual.input_resolution)
    images = F.normalize(model.encode_image(to_input(pil_batch(s.image for s in scenes))), dim=-1)  # [n, d]
    pairs = [(i, *foil_caption(scene, np.random.default_rng([9, i]))) for i, scene in enumerate(scenes)]
    pairs = [(i, caption, foil) for i, caption, foil in pairs if foil]
    texts = [t for _, caption, foil in pairs for t in (caption, foil)]
    text = F.normalize(model.encode_text(clip.tokenize(texts).to(images.device)), dim=-1).view(len(pairs), 2, -1)
    wins = {"size": [], "position": [], "pattern": []}
    for (i, caption, foil), (true, false) in zip(pairs, text):  # true, false: [d] each
        changed = {w.strip(",") for w in set(caption.split()) ^ set(foil.split())}
        kind = "size" if changed <= set(tw.SIZES) else "pattern" if changed <= set(tw.PATTERNS) else "position"
        wins[kind].append(float(images[i] @ true > images[i] @ false))
    return {kind: round(float(np.mean(w)), 3) for kind, w in wins.items()} | {"foils": len(pairs)}


@torch.inference_mode()
def pointing_game(model, n_scenes: int = 300, relative: bool = True) -> dict:
    """Pointing game on two-object scenes with the exact decomposition heatmap (all layers and heads).

    Returns the hit rate with the standard tolerance (15 px at 224 px, scaled: 4 px here, half a patch)
    and the strict rate (the peak pixel itself on the object), plus the number of objects scored. A map whose maximum
    is a plateau (a border patch's value repeated by the upsampling) has several peak pixels and pointing_hit takes the
    first: `pointing_game_plateaus` counts those objects, and `pointing_game_strict_random_ties` is the strict rate
    with the ties broken at random (its expected value: metrics.peak_share), which does not depend on reading order.
    Used by: evaluate (python -m course_utils.toyclip evaluate).
    """
    scenes = tw.scenes(n_scenes, n_objects=2)
    text = zero_shot_classifier(model, tw.CLASSES)
    tolerance = standard_tolerance(tw.IMAGE_SIZE)
    hits = strict = total = plateaus = 0
    strict_random_ties = 0.0
    for lo in range(0, n_scenes, 50):
        batch = scenes[lo: lo + 50]
        x = to_input(pil_batch(s.image for s in batch)).to(text.device)
        maps = token_maps(model, x, text).cpu()  # [B, C, H, W]: every class prompt's map at image resolution
        if relative:
            maps = relative_to_prompts(maps)
        for b, scene in enumerate(batch):
            for obj in scene.objects:
                heat = maps[b, obj.label]  # [H, W]
                hits += pointing_hit(heat, obj.mask, tolerance)
                strict += pointing_hit(heat, obj.mask, 0)
                strict_random_ties += peak_share(heat, obj.mask)
                plateaus += int((heat == heat.max()).sum() > 1)
                total += 1
    return dict(pointing_game=hits / total, pointing_game_strict=strict / total, pointing_game_objects=total,
                pointing_game_tolerance_px=tolerance, pointing_game_strict_random_ties=strict_random_ties / total,
                pointing_game_plateaus=plateaus)


def ablation_pattern(model, n_images: int = 1000) -> dict:
    """Zero-shot top-1 on the toy test set after mean-ablating: nothing, the last two attention layers, all MLP
    terms, the attention layers before those (the paper's pattern: only the second costs much).

    Used by: evaluate (python -m course_utils.toyclip evaluate).
    """
    model = model.float().eval()
    preprocess = clip.clip._transform(model.visual.input_resolution)
    contrib = head_contributions(model, tw.ToyShapes(train=False, n=n_images), preprocess, batch_size=100,
                                 progress=False)
    classifier = zero_shot_classifier(model, tw.CLASSES)
    L = contrib.heads.shape[1]
    return dict(none=mean_ablate(contrib, classifier),
                last_two_attention_layers=mean_ablate(contrib, classifier, attn_layers=[L - 2, L - 1]),
                all_mlps=mean_ablate(contrib, classifier, mlp_terms=range(L + 1)),
                early_attention_layers=mean_ablate(contrib, classifier, attn_layers=range(L - 2)))


# The bars ToyCLIP is built to meet (the fair-comparison issue): zero-shot top-1, strict pointing for TextSpan, size.
BARS = dict(zero_shot_top1=0.97, pointing_game_strict=0.90, checkpoint_mb=25.0)
# The paper's mean-ablation pattern: the last two attention layers cost at least ABLATION_FACTOR times the points
# that all MLPs, or the earlier attention layers, cost, and at least ABLATION_MIN_DROP of top-1 in all.
ABLATION_FACTOR, ABLATION_MIN_DROP = 5.0, 0.2


def ablation_pattern_holds(accuracies: dict) -> bool:
    """ablation_pattern's result -> does it show the paper's pattern (ABLATION_FACTOR, ABLATION_MIN_DROP)?

    Used by: evaluate.
    """
    drop = {k: accuracies["none"] - v for k, v in accuracies.items()}
    late = drop["last_two_attention_layers"]
    return late >= ABLATION_MIN_DROP and late >= ABLATION_FACTOR * max(drop["all_mlps"], drop["early_attention_layers"], 1e-3)


def evaluate(path: Path = CHECKPOINT, n_test: int = 2000, n_scenes: int = 300, n_role_scenes: int = 2000) -> dict:
    """Every figure ToyCLIP is built to meet, each with its bar and whether it meets it (`meets`): zero-shot top-1/top-5
    on the toy test set, the pointing game, both methods' premises (compare_maps.premises, with TextSpan's
    `role_ceiling`: per property, the share a head about it alone gets), the mean-ablation pattern, size; and the CPU
    speed of the image encoder.

    Used by: python -m course_utils.toyclip evaluate (the numbers in data/README.md).
    """
    model, _ = load_clip(path, device="cpu")
    top1, top5, ips = zero_shot(model, tw.ToyShapes(train=False, n=n_test))
    pg = pointing_game(model, n_scenes)
    checked = premises(model, n_images=min(n_test, 1000), n_scenes=n_role_scenes)
    ablation = {k: round(v, 4) for k, v in ablation_pattern(model, min(n_test, 1000)).items()}
    result = dict(zero_shot_top1=round(top1, 4), zero_shot_top5=round(top5, 4), n_test_images=n_test,
                  n_params=sum(p.numel() for p in model.parameters()),
                  checkpoint_mb=round(path.stat().st_size / 1e6, 2), images_per_s_cpu=round(ips, 1),
                  pointing_game=round(pg["pointing_game"], 4), pointing_game_strict=round(pg["pointing_game_strict"], 4),
                  pointing_game_strict_random_ties=round(pg["pointing_game_strict_random_ties"], 4),
                  pointing_game_plateaus=pg["pointing_game_plateaus"], pointing_game_objects=pg["pointing_game_objects"],
                  pointing_game_tolerance_px=pg["pointing_game_tolerance_px"],
                  token_mean_top1=checked["legrad"]["token_mean_top1_last_block"],
                  role_heads=checked["textspan"]["role_heads"], role_properties=checked["textspan"]["properties"],
                  role_heads_confirmed=checked["textspan"]["confirmed_heads"],
                  role_properties_confirmed=checked["textspan"]["confirmed_properties"],
                  textspan_premise_by_texts=bool(checked["textspan"]["holds_by_texts"]),
                  role_ceiling=checked["textspan"]["ceiling"],
                  top1_after_mean_ablation=ablation, torch_threads=torch.get_num_threads())
    result["meets"] = dict(zero_shot_top1=top1 >= BARS["zero_shot_top1"],
                           pointing_game_strict=result["pointing_game_strict"] >= BARS["pointing_game_strict"],
                           checkpoint_mb=result["checkpoint_mb"] <= BARS["checkpoint_mb"],
                           legrad_premise=bool(checked["legrad"]["holds"]),
                           textspan_premise=bool(checked["textspan"]["holds"]),
                           ablation_pattern=ablation_pattern_holds(ablation))
    result["bars"] = dict(BARS, legrad_premise=f"token_mean_top1 >= {checked['legrad']['bar']}",
                          textspan_premise=checked["textspan"]["bar"],
                          ablation_pattern=f"last two attention layers cost >= {ABLATION_FACTOR:g}x the points of all "
                                           f"MLPs or of the earlier attention layers, and >= {ABLATION_MIN_DROP:g}")
    return result


def main(argv=None) -> int:
    """python -m course_utils.toyclip train | evaluate | centre: reproduce data/toyclip.pt, measure a checkpoint, or
    write a copy of one with its text space centred (centre_text_space).

    Used by: python -m course_utils.toyclip.
    """
    parser = argparse.ArgumentParser(description="Train or evaluate the bundled ToyCLIP.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="reproduce data/toyclip.pt from a fixed seed")
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--scenes", type=int, default=120_000)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", type=Path, default=CHECKPOINT)
    t.add_argument("--aux-token-mean", type=float, default=1.0,
                   help="weight of the contrastive loss on the last block's token-mean readout (0: off)")
    t.add_argument("--aux-patches", type=float, default=1.0,
                   help="weight of the loss that reads each object patch as its class prompt (0: off)")
    t.add_argument("--twin-fraction", type=float, default=0.0, help="share of scene pairs that differ in one property")
    t.add_argument("--foils", action=argparse.BooleanOptionalAction, default=True,
                   help="foil captions, hard negatives that differ in size, position or pattern (--no-foils: off)")
    t.add_argument("--property-captions", type=float, default=0.15,
                   help="share of captions that name one property only, e.g. 'a thing at the top left'")
    t.add_argument("--background-patches", action="store_true",
                   help="the patch objective also reads untouched patches as their background's prompt")
    t.add_argument("--patch-blocks", type=int, default=1,
                   help="the patch objective reads the patch tokens of the last N blocks (1: the last only)")
    t.add_argument("--aux-heads", type=float, default=1.0,
                   help="weight of the head objective: 12 heads of the last two blocks name colour, shape or pattern")
    t.add_argument("--head-purity", type=float, default=2.0, help="head objective: weight of its purity term")
    t.add_argument("--head-truth", type=float, default=2.0, help="head objective: weight of its ground-truth term")
    t.add_argument("--head-look", type=float, default=1.0,
                   help="head objective: weight of its term that asks the role heads to look at the objects")
    t.add_argument("--head-apart", type=float, default=0.0,
                   help="head objective: weight of its term that keeps each role head out of the other roles' spans")
    t.add_argument("--head-text", action="store_true",
                   help="head objective: its naming term also trains the text tower's words for the roles")
    t.add_argument("--head-from", type=float, default=0.5,
                   help="head objective: the share of the steps after which its ground-truth and look terms count")
    t.add_argument("--aux-legrad", type=float, default=0.0,
                   help="weight of the loss that puts LeGrad's relevance for each object's prompt on that object (0: off)")
    t.add_argument("--legrad-smooth", type=float, default=0.0,
                   help="that loss reads LeGrad's ReLU as a softplus of this sharpness (0: the ReLU itself)")
    t.add_argument("--init", type=Path, default=None, help="start from this checkpoint instead of random weights")
    t.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    t.add_argument("--centre-text", action="store_true",
                   help="after training, take the class prompts' shared direction out of the text projection")
    t.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes drawing the scenes")
    t.add_argument("--device", default="cpu", help="cpu (reproducible, the bundled recipe) or cuda")
    e = sub.add_parser("evaluate", help="zero-shot accuracy, pointing game, size and speed; last line is JSON")
    e.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    e.add_argument("--n-test", type=int, default=2000)
    e.add_argument("--n-scenes", type=int, default=300)
    e.add_argument("--n-role-scenes", type=int, default=2000, help="scenes for TextSpan's head roles")
    c = sub.add_parser("centre", help="write a copy of a checkpoint with its text space centred on the class prompts")
    c.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    c.add_argument("--out", type=Path, required=True, help="where to write the centred copy (never the input)")
    args = parser.parse_args(argv)
    if args.cmd == "centre":
        if args.out.resolve() == args.checkpoint.resolve():
            parser.error(f"--out {args.out} is the input checkpoint; write the centred copy somewhere else.")
        model, _ = load_clip(args.checkpoint, device="cpu")
        print(json.dumps(centre_text_space(model)))
        save(model, args.out)
        return 0
    if args.cmd == "train":
        train(args.steps, args.batch_size, args.scenes, seed=args.seed, out=args.out, aux_token_mean=args.aux_token_mean,
              aux_patches=args.aux_patches, twin_fraction=args.twin_fraction, workers=args.workers, device=args.device,
              foils=args.foils, property_captions=args.property_captions, background_patches=args.background_patches,
              patch_blocks=args.patch_blocks, centre_text=args.centre_text, aux_heads=args.aux_heads,
              head_purity=args.head_purity, head_truth=args.head_truth, head_look=args.head_look, head_apart=args.head_apart,
              head_text=args.head_text, head_from=args.head_from, aux_legrad=args.aux_legrad,
              legrad_smooth=args.legrad_smooth, init=args.init, lr=args.lr)
        return 0
    result = evaluate(args.checkpoint, args.n_test, args.n_scenes, args.n_role_scenes)
    print_result(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
