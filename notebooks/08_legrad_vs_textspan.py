# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
# ---

# %% [markdown]
# # 08 · LeGrad vs TextSpan: measuring the course notes' claims
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/inside-clip/inside-clip/blob/main/notebooks/08_legrad_vs_textspan.ipynb)
#
# **What you will be able to do after this notebook**
# - build LeGrad (Bousselham et al., 2024) from its parts, check it against `course_utils.legrad`, and see that
#   `course_utils.legrad` matches the authors' own package on the same weights;
# - explain the trick that gives P prompts' maps from one forward pass and one batched backward pass;
# - score TextSpan maps, LeGrad (last two layers and all layers), raw attention and attention rollout on the same
#   images against ground truth, with time and memory per map;
# - say which of the course notes' claims the measurements support, and which they don't.
#
# **Expected time:** 75 minutes (about 30 on the 4 exercises). Offline it runs in about a minute on a laptop CPU.
#
# The course notes compare the two methods in a table of claims: TextSpan is "faster" and "more stable", LeGrad "focuses on
# discriminative parts" while TextSpan shows "semantic alignment". A claim is a hypothesis. This notebook turns the
# table into measurements on images whose ground truth we know.

# %% tags=["colab-setup"]
# Colab setup: on Colab this installs the course package (keeping Colab's torch); anywhere else it does nothing.
import sys
if "google.colab" in sys.modules:
    # !git clone -q --depth 1 -b main https://github.com/inside-clip/inside-clip /content/inside-clip
    # !pip install -q --no-deps -e /content/inside-clip openai-clip einops ftfy regex
    sys.path.insert(0, "/content/inside-clip")

# %% tags=["varies"]
# LeGrad, the attention baselines and the scoring loop that compares every map on the toy world.
import torch
import torch.nn.functional as F
import matplotlib.pyplot as plt
from einops import rearrange

from course_utils import compare_maps as cm, toyworld as tw
from course_utils.checks import check, assert_same
from course_utils.env import banner, get_device, is_real, rehearsal_sized, start_lesson
from course_utils.heatmaps import overlay, textspan_heatmap
from course_utils.inside_vit import patch_tokens, qkv_heads
from course_utils.legrad import legrad
from course_utils.models import architecture_name, load_clip, model_info

start_lesson(seed=0)
device = get_device()

# %% tags=["varies"]
model, preprocess = load_clip(device=device)   # the course's model: ViT-B/32 unless COURSE_MODEL names another
model = model.float().eval()
MODE = banner(model)                            # what produced every number below, read from what was loaded
REAL_MODEL = is_real(model)                     # the scenes are always the toy world's: they come with masks
visual, info = model.visual, model_info(model)
SIZE = info.image_resolution
CLASS_NAMES = [c.replace("_", " ") for c in tw.CLASSES]
class_emb = cm.class_embeddings(model)                      # [100, d], unit length: "a photo of a red star", ...
scene = tw.scenes(1, n_objects=2, size=SIZE)[0]
image = preprocess(scene.image).to(device)                 # [3, SIZE, SIZE], where the model is
labels = [o.label for o in scene.objects]
print(f"{model.course_asset.name}: {info.layers} blocks x {info.heads} heads; scene with", [CLASS_NAMES[l] for l in labels])


# %% [markdown]
# ## 1 · LeGrad, step by step
#
# TextSpan (notebooks 05–07) reads the *forward* pass: what each head writes, dotted with a text. LeGrad asks a
# *backward* question: if the attention at block $l$ changed, how would the image–text score change?
#
# For each chosen block $l$ (the authors' default: the last two):
#
# 1. read the block's output as an image embedding: the **mean over all tokens**, then `ln_post`, `proj`, unit length:
#    $s_l = \mathrm{normalise}(\mathrm{LN}(\bar x_l)\,W_{proj})$;
# 2. score it against the (unit) text embedding $t$: $s_l \cdot t$;
# 3. differentiate with respect to the block's attention probabilities: $G_l = \partial (s_l \cdot t) / \partial A_l$,
#    shape `[H, N, N]`;
# 4. keep the positive part, average over heads and query rows, drop the CLS key:
#    $E_l = \frac{1}{H N}\sum_h \sum_i [G_l]^+_{h,i,1:}$, shape `[N-1]`;
#
# then sum over blocks, min-max normalise, and upsample to the image.
#
# ### Exercise 1 · token_mean_embedding · 🟢 easy · ~5 min
# `token_mean_embedding(x, ln_weight, ln_bias, proj)`: x `[B, N, D]` → `[B, d]`, unit length (step 1).
# <details><summary>Hint</summary>
#
# `F.layer_norm(x.mean(dim=1), (D,), ln_weight, ln_bias, 1e-5) @ proj`, then `F.normalize(..., dim=-1)`.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def token_mean_embedding(x, ln_weight, ln_bias, proj):
    # BEGIN SOLUTION
    pooled = F.layer_norm(x.mean(dim=1), (x.shape[-1],), ln_weight, ln_bias, 1e-5)
    return F.normalize(pooled @ proj, dim=-1)
    # END SOLUTION


# %% tags=["nbval-check-output"]
check("token_mean_embedding", token_mean_embedding)


# %% [markdown]
# ### Exercise 2 · relevance_from_grad · 🟢 easy · ~4 min
# Gradients `[P, H, N, N]` (one per prompt) → `[P, N-1]` (step 4).
# <details><summary>Hint</summary>
#
# `grad.clamp(min=0).mean(dim=(1, 2))[:, 1:]`: the ReLU comes *before* the mean.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def relevance_from_grad(grad):
    # BEGIN SOLUTION
    return grad.clamp(min=0).mean(dim=(1, 2))[:, 1:]
    # END SOLUTION


# %% tags=["nbval-check-output"]
check("relevance_from_grad", relevance_from_grad)


# %% [markdown]
# ### Exercise 3 · min_max · 🟢 easy · ~3 min
# `[P, ...]` → each prompt's map scaled to [0, 1] (its own minimum and maximum).
# <details><summary>Hint</summary>
#
# `flat = maps.flatten(1)`; `lo, hi = flat.min(1).values, flat.max(1).values`; reshape them to broadcast.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def min_max(maps):
    # BEGIN SOLUTION
    flat = maps.flatten(1)
    lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
    shape = (-1,) + (1,) * (maps.ndim - 1)
    return (maps - lo.view(shape)) / (hi - lo).view(shape)
    # END SOLUTION


# %% tags=["nbval-check-output"]
check("min_max", min_max)


# %% [markdown]
# Now assemble them. The attention probabilities must be computed **explicitly** (PyTorch's fused attention never
# materialises them), and made a leaf tensor with `requires_grad_()`, so autograd can give us $\partial/\partial A_l$.
# This first version is the plain one: one backward pass per prompt.

# %% tags=["varies"]
def my_legrad(model, image, texts, layers):
    visual = model.visual
    texts = F.normalize(texts, dim=-1)
    with torch.no_grad():
        x = patch_tokens(visual, image[None])                              # [1, N, D]
    relevance = 0
    for l, block in enumerate(visual.transformer.resblocks[: max(layers) + 1]):
        attn = block.attn
        q, k, v = qkv_heads(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias, attn.num_heads)  # [1, H, N, d_h]
        probs = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)           # [1, H, N, N]
        probs = probs.detach().requires_grad_(l in layers)                 # a leaf we can differentiate
        mid = x + attn.out_proj(rearrange(probs @ v, "b h n d -> b n (h d)"))
        out = mid + block.mlp(block.ln_2(mid))
        if l in layers:
            s = token_mean_embedding(out, visual.ln_post.weight, visual.ln_post.bias, visual.proj)   # [1, d]
            grads = [torch.autograd.grad((s @ t), probs, retain_graph=True)[0][0] for t in texts]     # P x [H, N, N]
            relevance = relevance + relevance_from_grad(torch.stack(grads))                         # [P, N-1]
        x = out.detach()
    grid = rearrange(relevance, "p (gh gw) -> p 1 gh gw", gh=int(round(relevance.shape[-1] ** 0.5)))
    up = F.interpolate(grid, size=image.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return min_max(up)

last2 = [info.layers - 2, info.layers - 1]
mine = my_legrad(model, image, class_emb[labels], last2)
assert_same("my_legrad == course_utils.legrad (last two blocks)", mine, legrad(model, image, class_emb[labels]), atol=1e-5)
assert_same("my_legrad == course_utils.legrad (all blocks)", my_legrad(model, image, class_emb[labels], list(range(info.layers))),
            legrad(model, image, class_emb[labels], layers=range(info.layers)), atol=1e-5)

# %% [markdown]
# **One backward pass for P prompts.** The loop above runs P backward passes. `course_utils.legrad` runs one: it asks
# `torch.autograd.grad` for the gradients of all P scores at once, with the identity matrix as `grad_outputs` and
# `is_grads_batched=True` (row p of the identity picks score p; autograd vectorises the P backward passes). The
# authors' package instead copies the image P times and runs the whole model on the batch. Blocks before the first
# chosen one run without autograd in ours, since nothing there is differentiated.
#
# **Checked against the authors.** `tests/test_legrad.py` builds open_clip's copy of the *same* ViT-B/16 weights,
# runs the authors' `legrad-torch` 1.1 and our `legrad` on the same image and prompts, and asserts the maps agree
# within 1e-4. If the package is installed here (`pip install -e .[tests]`), the next cell repeats that check live.

# %% tags=["varies"]
try:
    from course_utils.legrad_twin import legrad_torch_maps
    from course_utils.models import random_clip
except ImportError as err:
    print("legrad-torch isn't installed here, so the live cross-check is skipped:", err)
else:
    b16 = random_clip("ViT-B/16").float()
    x = torch.randn(3, 224, 224, generator=torch.Generator().manual_seed(0))
    t = F.normalize(torch.randn(3, 512, generator=torch.Generator().manual_seed(1)), dim=-1)
    try:
        theirs = legrad_torch_maps(b16, layer_index=-2)(x, t)
    except ImportError as err:
        print("legrad-torch isn't installed here, so the live cross-check is skipped:", err)
    else:
        assert_same("course_utils.legrad == legrad-torch 1.1, random ViT-B/16, 3 prompts", legrad(b16, x, t), theirs, atol=1e-4)
    del b16


# %% [markdown]
# ## 2 · Two baselines that ignore the prompt
#
# A heatmap method should beat maps that don't even look at the prompt. Two classics:
#
# - **raw attention**: the last block's attention from the CLS query to each patch, averaged over heads;
# - **attention rollout** (Abnar & Zuidema, 2020): attention is mixed with the identity (the residual stream carries
#   each token forward), $\hat A_l = \mathrm{rownorm}(0.5\,\bar A_l + 0.5\,I)$, and multiplied through the blocks,
#   $R = \hat A_{L-1} \cdots \hat A_0$; the map is the CLS row of $R$ without the CLS column.
#
# In a two-object scene, a prompt-blind map points at the right object only by luck: expect about 0.5.
#
# ### Exercise 4 · rollout_from_probs · 🟡 medium · ~8 min
# probs `[L, H, N, N]` → `[N-1]`.
# <details><summary>Hint</summary>
#
# Start with `joint = torch.eye(N)`; for each block, `a = 0.5 * probs[l].mean(0) + 0.5 * eye`,
# `a = a / a.sum(-1, keepdim=True)`, `joint = a @ joint`. Return `joint[0, 1:]`.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def rollout_from_probs(probs):
    # BEGIN SOLUTION
    eye = torch.eye(probs.shape[-1], dtype=probs.dtype)
    joint = eye
    for layer in probs:
        a = 0.5 * layer.mean(dim=0) + 0.5 * eye
        joint = (a / a.sum(dim=-1, keepdim=True)) @ joint
    return joint[0, 1:]
    # END SOLUTION


# %% tags=["nbval-check-output"]
check("rollout_from_probs", rollout_from_probs)

# %% tags=["varies"]
fig, axes = plt.subplots(2, 6, figsize=(12, 4.4))
for row, obj in zip(axes, scene.objects):
    row[0].imshow(scene.image); row[0].set_title(f"prompt: '{CLASS_NAMES[obj.label]}'", fontsize=8)
    for ax, method in zip(row[1:], cm.METHODS):
        m = cm.method_maps(method, model, image, class_emb[[obj.label]], [obj.label], class_emb)[0]
        ax.imshow(overlay(scene.image, m)); ax.set_title(method, fontsize=8)
for ax in axes.flat: ax.axis("off")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 3 · The measured table
#
# Every method, the same 250 two-object scenes (500 objects; 100 scenes for a real ViT on a CPU, which would otherwise
# take several minutes), the same scores as notebook 07: the pointing game
# (peak on the object, standard tolerance), where the misses land (on the other object, or on the background), mIoU
# (map binarised at its mean), mAP, and the time per map. The CLI
# `python -m course_utils.compare_maps --methods textspan legrad_last2 legrad_all raw_attention rollout` runs exactly
# this, so anyone can re-measure the table; its last line is the same numbers as JSON. Without `--methods` it also
# scores each method under the other's normalisation and two chance maps. (Timings differ between runs; scores don't.)

# %% tags=["varies"]
FAST = device.type == "cpu" and REAL_MODEL        # a 224-px ViT on a laptop CPU: 100 scenes instead of 250
n_scenes = rehearsal_sized(100 if FAST else cm.N_SCENES, 5)
results = cm.compare(model, n_scenes=n_scenes)
print(f"{model.course_asset.name}, {results['textspan']['objects']} objects in {n_scenes} two-object scenes:")
print(cm.table(results))
ts, lg = results["textspan"]["seconds_per_map"], results["legrad_last2"]["seconds_per_map"]
print(f"\ntime per map, TextSpan / LeGrad (last 2): {ts / lg:.2f}")

# %% [markdown]
# **Why would LeGrad fail?** If LeGrad points *below* chance here, it is pointing at the wrong object more often than
# luck. Before blaming the method, test its premise. LeGrad differentiates $s_l \cdot t$, where $s_l$ reads a block
# through the **mean of all tokens**. That only means something if the token-mean readout lives in the text space, as the
# CLS readout does after training. Measure it: zero-shot accuracy of each block's token-mean readout, next to the CLS
# embedding's.

# %% tags=["varies"]
from course_utils.data import load_cifar100
from course_utils.legrad import readout_accuracy
from course_utils.zero_shot import SINGLE_TEMPLATE, zero_shot_classifier

eval_set = load_cifar100(train=False)                     # CIFAR-100 in real mode, the toy test set offline
print("images:", eval_set.course_asset.describe())
ids = range(rehearsal_sized(300, 20))
acc = readout_accuracy(model, torch.stack([preprocess(eval_set[i][0]) for i in ids]),
                       torch.tensor([eval_set[i][1] for i in ids]),
                       zero_shot_classifier(model, eval_set.classes, SINGLE_TEMPLATE).cpu())
print(f"zero-shot top-1 on {len(ids)} images ({len(eval_set.classes)} classes, chance {100 / len(eval_set.classes):.0f}%):")
print(f"  CLS embedding (what CLIP was trained on)   {100 * acc['cls']:5.1f}%")
for l, a in enumerate(acc["token_mean"]):
    print(f"  token mean after block {l:<2}                {100 * a:5.1f}%")

# %% [markdown]
# Offline, ToyCLIP was trained only through its CLS token, and its token-mean readout is near chance: LeGrad's score
# $s_l \cdot t$ is then noise with a gradient, and its maps mean nothing. That is a property of the model, not a bug
# in LeGrad (our LeGrad equals the authors' to 1e-4 on the same weights). Large CLIP models, trained on far more data,
# have token-mean readouts that classify well, which is why LeGrad works on them; in real mode, the numbers above let
# you check that for ViT-B/32. The lesson generalises: an attribution method carries assumptions about the model, and
# they can be measured.
#
# **Memory.** Peak extra memory of one call with 5 prompts, each method measured in a fresh Python process (the peak of
# a process can't be reset from inside a notebook that has already run other things). The three processes run side by
# side: each one reads only its own peak. In real mode the children build ViT-B/32 with random weights: memory doesn't
# depend on the weights. Linux only; elsewhere it says so.

# %% tags=["varies"]
arch = architecture_name(model)                           # measured on fresh random weights of the same shapes
peaks = cm.peak_memory_mbs(("textspan", "legrad_last2", "legrad_all"), arch, n_prompts=5)
for method, mb in peaks.items():
    print(f"  {method:<13} " + (f"{mb:7.1f} MiB extra" if mb is not None else "not measurable on this OS"))

# %% [markdown]
# ## 4 · Does a wrong prompt give a weak map?
#
# Ask for something that isn't there: a colour and a shape that no object in the scene has. A method that *reads the
# text* should give a weaker map than for an object that is there. LeGrad's last step, min-max scaling, makes every
# map peak at exactly 1, so the question can only be asked before it: `legrad(..., normalize=False)`. For TextSpan we
# use the relative scores. Per scene: is the present object's peak higher than the absent class's peak?

# %% tags=["varies"]
wrong = cm.wrong_prompt_test(model, n_scenes=rehearsal_sized(50 if FAST else 100, 5))
for method, r in wrong.items():
    print(f"{method:<13} present object's peak higher in {100 * r['present_beats_absent']:5.1f}% of {r['scenes']} scenes; "
          f"absent/present peak ratio {r['absent_over_present_peak']:.2f}")
s = tw.scenes(1, n_objects=2, size=SIZE)[0]
absent = cm.absent_class(s, 0)
x = preprocess(s.image)
pair = [s.objects[0].label, absent]
ts_maps = textspan_heatmap(model, x, class_emb)[pair]
lg_raw = legrad(model, x, class_emb[pair], normalize=False)
fig, axes = plt.subplots(1, 5, figsize=(11, 2.6))
axes[0].imshow(s.image)
vmax_ts, vmax_lg = ts_maps.max().item(), lg_raw.max().item()
for ax, m, title, vmax in zip(axes[1:], [ts_maps[0], ts_maps[1], lg_raw[0], lg_raw[1]],
                              [f"TextSpan '{CLASS_NAMES[pair[0]]}'", f"TextSpan '{CLASS_NAMES[absent]}'",
                               f"LeGrad raw '{CLASS_NAMES[pair[0]]}'", f"LeGrad raw '{CLASS_NAMES[absent]}'"],
                              [vmax_ts, vmax_ts, vmax_lg, vmax_lg]):
    ax.imshow(m.cpu(), cmap="jet", vmin=min(0, m.min().item()), vmax=vmax); ax.set_title(title, fontsize=8)
for ax in axes: ax.axis("off")
plt.suptitle("same colour scale for both prompts of a method", fontsize=9)
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 5 · The notes' claims, against the measurements
#
# First the verdicts your own numbers give (computed, not typed in):

# %% tags=["varies"]
r = results
def verdict(ok): return "holds here" if ok else "does NOT hold here"
print(f"'TextSpan is faster':  TextSpan/LeGrad time per map = {ts / lg:.2f} -> {verdict(ts < lg)}")
print(f"'both follow the prompt':  pointing game TextSpan {r['textspan']['pointing_game']:.2f}, LeGrad {r['legrad_last2']['pointing_game']:.2f}, "
      f"prompt-blind raw attention {r['raw_attention']['pointing_game']:.2f}")
better = max(("textspan", "legrad_last2"), key=lambda m: r[m]["miou"])
print(f"'TextSpan covers the whole object, LeGrad the discriminative part':  mIoU TextSpan {r['textspan']['miou']:.2f}, "
      f"LeGrad {r['legrad_last2']['miou']:.2f} -> {better} matches the whole-object masks better")
print(f"'a wrong prompt gives a weak map':  TextSpan {100 * wrong['textspan']['present_beats_absent']:.0f}%, "
      f"LeGrad (unscaled) {100 * wrong['legrad_last2']['present_beats_absent']:.0f}% of scenes; after min-max scaling, 0% can be told apart")

# %% [markdown]
# And how to read them:
#
# Fill this in from *your* table above (the numbers depend on the mode and the machine); here is how to read it.
#
# | the notes say | what we measured | verdict |
# |---|---|---|
# | TextSpan needs no backward pass | true by construction: forward pass + dot products | holds |
# | "TextSpan is faster" | time per map, TextSpan / LeGrad, in section 3 and in `benchmarks/legrad_cost.py` | check your ratio: one decomposition serves every prompt, while LeGrad's cost grows with the prompts |
# | LeGrad "focuses on discriminative parts", TextSpan on the whole object | mIoU and mAP against whole-object masks | on the toy world, the method with the higher mIoU covers more of the object |
# | "LeGrad can be unstable" | not measured here; its maps are min-max scaled, so a weak signal is stretched to [0, 1] | section 4 shows what that scaling hides |
# | both explain "which regions matter for the prompt" | pointing game far above the prompt-blind baselines? | a method at ~0.5 on two-object scenes is not reading the prompt |
# | LeGrad "doesn't use the text directly" | it does: the score it differentiates is $s_l \cdot t$ | does not hold |
#
# Two lessons beyond the table. First, the methods answer different questions: TextSpan reads what is *written* into
# the embedding (the direct effect); LeGrad asks what *would change* the score, through the last blocks. Second,
# LeGrad's default reads only the last two blocks; `legrad_all` shows what the other blocks add, on the same scenes.
#
# ## Summary
#
# | step | code | checked against |
# |---|---|---|
# | read a block as an embedding | token mean → `ln_post` → `proj` → unit | `legrad.token_mean_embedding` |
# | relevance | ReLU(∂score/∂A), mean over heads and queries | `legrad.relevance_from_grad` |
# | LeGrad | sum over blocks, min-max, upsample | `course_utils.legrad`, which matches legrad-torch 1.1 (1e-4) |
# | baselines | raw attention, rollout | `compare_maps.rollout_from_probs` |
# | comparison | pointing game, mIoU, mAP, time, memory | `python -m course_utils.compare_maps` |
#
# ## Quiz
# 1. Why must the attention probabilities be computed explicitly for LeGrad?
# 2. Why does LeGrad's map for a prompt naming something absent still peak at 1?
# 3. The authors' package runs the image P times for P prompts; ours runs it once. Where does the P reappear in ours?
# 4. A prompt-blind baseline gets 0.5 on two-object scenes. What would it get on one-object scenes, and what does
#    that say about benchmarks with one object per image?
#
# <details><summary>Answers</summary>
#
# 1. Autograd can only give gradients with respect to tensors in the graph; fused attention
#    (`scaled_dot_product_attention`) computes the output without ever storing the probabilities.
# 2. Min-max scaling maps the largest value to 1 whatever its size. Only the unscaled relevance can show weakness.
# 3. In the batched backward pass: P vector-Jacobian products, vectorised, through the chosen blocks only.
# 4. Close to 1: any map that points at "the object" wins. Single-object benchmarks can't tell a method that reads the
#    prompt from one that finds salient things; that is why this course scores two-object scenes.
# </details>
