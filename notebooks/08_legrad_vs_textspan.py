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
# - measure each method's premise on the model before ranking anything;
# - score TextSpan and LeGrad (last two layers and all layers) under the same normalisations, next to a measured
#   chance level, on the same images against ground truth, with time and memory per map;
# - say which of the course notes' claims the measurements support, and which they don't.
#
# **Expected time:** about 87 minutes at a learner's pace (30 of them on the exercises and open tasks; estimated as the instructor guide explains). Offline it runs in about a minute on a laptop CPU.
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
# > **Common pitfall.** The course notes expand the name as "Layer-wise Gradient-based Attribution for Vision
# > Transformers". The paper's title is "LeGrad: An Explainability Method for Vision Transformers via Feature Formation
# > Sensitivity" (Bousselham et al.): its idea is the *sensitivity* of the feature formed at each layer to that layer's
# > attention, and it is built for ViTs in general, CLIP's among them.
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

# %%
from course_utils import diagrams   # the steps below, for one block (drawn by the course with matplotlib)
_ = diagrams.legrad_pipeline()

# %% [markdown]
# ### Exercise 1 · token_mean_embedding · 🟢 easy · ~5 min
# `token_mean_embedding(x, ln_weight, ln_bias, proj)`: x `[B, N, D]` → `[B, d]`, unit length (step 1).
# <details><summary>Hint 1 · the idea</summary>
#
# LeGrad reads a block as an image embedding: average all tokens (CLS included), then the model's own readout.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# Mean over the token axis gives `[B, D]`; `F.layer_norm` with ε 1e-5, then the projection `[D, d]`, then unit
# length (`F.normalize`).
# </details>


# %% jupyter={"source_hidden": true} tags=["solution"]
def token_mean_embedding(x, ln_weight, ln_bias, proj):
    # BEGIN SOLUTION
    pooled = F.layer_norm(x.mean(dim=1), (x.shape[-1],), ln_weight, ln_bias, 1e-5)
    return F.normalize(pooled @ proj, dim=-1)
    # END SOLUTION


# %% tags=["nbval-check-output"]
token_mean_embedding = check("token_mean_embedding", token_mean_embedding)


# %% [markdown]
# ### Exercise 2 · relevance_from_grad · 🟢 easy · ~4 min
# Gradients `[P, H, N, N]` (one per prompt) → `[P, N-1]` (step 4).
# <details><summary>Hint 1 · the idea</summary>
#
# Keep only positive gradients, average over heads and query rows, and keep the patch keys.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# The ReLU comes *before* the mean. `[P, H, N, N]`: heads are axis 1, queries axis 2, keys axis 3; key 0 is CLS.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def relevance_from_grad(grad):
    # BEGIN SOLUTION
    return grad.clamp(min=0).mean(dim=(1, 2))[:, 1:]
    # END SOLUTION


# %% tags=["nbval-check-output"]
relevance_from_grad = check("relevance_from_grad", relevance_from_grad)


# %% [markdown]
# ### Exercise 3 · min_max · 🟢 easy · ~3 min
# `[P, ...]` → each prompt's map scaled to [0, 1] (its own minimum and maximum).
# <details><summary>Hint 1 · the idea</summary>
#
# Stretch each prompt's map to [0, 1]: subtract its minimum, divide by its range.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# One minimum and one maximum per prompt: flatten everything but axis 0 (or reduce over those axes) and keep shapes
# that broadcast back.
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
min_max = check("min_max", min_max)


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
# In a two-object scene, a prompt-blind map points at the right object only by luck. How often is luck? Section 4
# measures it, with two maps that ignore the image as well.
#
# ### Exercise 4 · rollout_from_probs · 🟡 medium · ~8 min
# probs `[L, H, N, N]` → `[N-1]`.
# <details><summary>Hint 1 · the idea</summary>
#
# Per block: average the heads, mix in the identity (the residual), renormalise rows; multiply the blocks together,
# later blocks on the left; read the CLS row.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# `[L, H, N, N]`: mean over heads gives `[L, N, N]`; `torch.eye(N)`; rows sum to 1 after dividing by their sum. The
# answer drops column 0 (CLS).
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
rollout_from_probs = check("rollout_from_probs", rollout_from_probs)

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
# ## 3 · Each method's premise, measured before any ranking
#
# Every attribution method assumes something of the model. Where that fails, its score measures the model, not the
# method; so the next section's table gets a verdict only if both premises hold.
#
# - **LeGrad's premise.** LeGrad differentiates $s_l \cdot t$, where $s_l$ reads block $l$ through the **mean of all its
#   tokens**, then `ln_post` and `proj`. That score means something only if the token-mean readout lives in the text
#   space, as CLS's does. Test: each block's token-mean readout's zero-shot accuracy. Bar: the last block's
#   classifies the toy test set at 80% top-1 or more.
# - **TextSpan's premise.** TextSpan explains the model through heads with roles. Test: TextSpan with the toy
#   pool on the last two layers' heads (notebook 06). Bar: at least 6 heads with 80% or more of their texts about one
#   property, covering at least 3 properties, each confirmed by the scenes: that property explains 80% of the head's
#   variance.
#
# First the readout, block by block, on this mode's own test set (CIFAR-100 in real mode, the toy test set offline):

# %% tags=["varies"]
from course_utils.data import load_cifar100
from course_utils.legrad import readout_accuracy
from course_utils.zero_shot import SINGLE_TEMPLATE, zero_shot_classifier

FAST = device.type == "cpu" and REAL_MODEL        # a 224-px ViT on a laptop CPU: smaller samples, said where used
eval_set = load_cifar100(train=False)                     # CIFAR-100 in real mode, the toy test set offline
print("images:", eval_set.course_asset.describe())
eval_classes = zero_shot_classifier(model, eval_set.classes, SINGLE_TEMPLATE)   # [C, d], unit length
ids = range(rehearsal_sized(300, 20))
acc = readout_accuracy(model, torch.stack([preprocess(eval_set[i][0]) for i in ids]),
                       torch.tensor([eval_set[i][1] for i in ids]), eval_classes.cpu())
print(f"zero-shot top-1 on {len(ids)} images ({len(eval_set.classes)} classes, chance {100 / len(eval_set.classes):.0f}%):")
print(f"  CLS embedding (what encode_image returns)  {100 * acc['cls']:5.1f}%")
for l, a in enumerate(acc["token_mean"]):
    print(f"  token mean after block {l:<2}                {100 * a:5.1f}%")

# %% [markdown]
# Then both premises with their bars, on the toy world (drawn at the model's resolution in real mode: the head roles
# need the toy pool).

# %% tags=["varies"]
checked = cm.premises(model, n_images=rehearsal_sized(300 if FAST else 500, 20),
                      n_scenes=rehearsal_sized(500 if FAST else 2000, 20))
lp, tp = checked["legrad"], checked["textspan"]
print(f"LeGrad's premise:   the last block's token mean classifies {100 * lp['token_mean_top1_last_block']:.1f}% of the toy "
      f"test set (CLS: {100 * lp['cls_top1']:.1f}%); bar {100 * lp['bar']:.0f}%  ->  {'holds' if lp['holds'] else 'FAILS'}")
print(f"TextSpan's premise: {len(tp['role_heads'])} heads with a role by their texts "
      f"({', '.join(tp['role_heads']) or 'none'}; {', '.join(tp['properties']) or 'none'}),")
print(f"  of which the scenes confirm {len(tp['confirmed_heads'])} ({', '.join(tp['confirmed_heads']) or 'none'}; "
      f"{', '.join(tp['confirmed_properties']) or 'none'}); bar {tp['bar']}  ->  {'holds' if tp['holds'] else 'FAILS'}")
print("  a head about one property alone would get, from the same pool: "
      + ", ".join(f"{p} {100 * share:.0f}%" for p, share in tp["ceiling"].items())
      + f"  ->  can reach the bar: {', '.join(tp['reachable']) or 'none'}")

# %% [markdown]
# **What the last line asks.** The text pool, not the heads: TextSpan's 5 texts for a head carrying one property and
# nothing else (`ideal_head_share`). Two sizes move such a head along one direction: after one size text, the picks
# go elsewhere. Colour and shape (10 values each) and pattern (6) fill it; size, position and count cannot, so the
# toy world paints patterns.
#
# **Why ToyCLIP is trained the way it is.** The course's first ToyCLIP was trained like openai's CLIP, through the CLS
# token only. Its token-mean readout classified the toy test set at 1.6 to 6.2% (chance: 1%), so LeGrad's score was
# noise with a gradient, and its peaks landed on the background for 92% of the objects. openai's CLIP is also trained through CLS
# only, so that alone is not the explanation; what matters is what the late patch tokens carry, which can be
# measured, as above. The bundled ToyCLIP therefore adds objectives (recipe and reasons: `data/README.md`): the
# contrastive loss on the token-mean readout too, a loss that reads each patch on an object as that object's class
# prompt, and one that asks 12 late heads for colour, shape or pattern. Its head roles were asked for, not found;
# the paper finds them in the real model. The lesson: an attribution method carries assumptions about the model, and
# they can be measured before anyone ranks it.
#
# A premise test is a check, not a proof. Among the recipes tried for ToyCLIP, one whose token mean classified at 99%
# still had LeGrad (last two blocks, absolute) point at only 18% of the objects; another, trained with the patch
# objective alone, read 6% through its token mean while LeGrad, relative to the prompts, pointed at 96%. LeGrad's
# gradient reads each token's value, so it needs patch tokens that carry their own object: the token mean only
# partly tests that.
#
# ## 4 · The measured table, fair by construction
#
# Every method, the same two-object scenes (100 scenes, 200 objects), the same
# scores as notebook 07: the pointing game (peak on the object, standard tolerance), where the misses land (on the
# other object, or on the background), mIoU (map binarised at its mean), mAP, and the time per map.
#
# - **Both normalisations for both methods.** A map is *relative* (minus the mean of the maps of all 100 class prompts,
#   which removes what every prompt lights up: TextSpan's default) or *absolute* (the method's own map for that prompt:
#   LeGrad's default). So `textspan` / `textspan_absolute` and `legrad_last2_relative` / `legrad_last2`.
# - **What every prompt shares.** `legrad_last2_centred` asks LeGrad about each prompt minus the mean class prompt:
#   for TextSpan, linear in the prompt, that *is* the relative map. Pointing far above `legrad_last2` means LeGrad's
#   absolute misses answer what all prompts share, not the prompt: see where they land.
# - **Both LeGrads.** `legrad_last2` is the authors' package's default (its `layer_index=-2`); the LeGrad paper
#   aggregates every layer: `legrad_all`.
# - **Chance, measured.** `centre_prior` (highest at the image centre) and `random_map` (seeded noise on the patch
#   grid) ignore prompt and image; raw attention and rollout look at the image but not the prompt, so they find *an*
#   object. The chance level is the best of these four (`cm.chance_level`).
#
# `python -m course_utils.compare_maps --scenes 100 --methods ...` computes the same table. The
# verdict under it is computed from the table and the premises: none where a premise fails.

# %% [markdown]
# **Predict, then run.** Which method will score the highest pointing game in the table below, and will LeGrad's
# relative maps beat its absolute ones? Write the method name (as the table spells it) in `my_winner`.

# %%
my_winner = None   # e.g. "textspan"

# %% tags=["varies"]
n_scenes = rehearsal_sized(100, 5)   # the command line's default is 250
results = cm.compare(model, n_scenes=n_scenes, methods=cm.FAIR_METHODS + ("raw_attention", "rollout"))
print(f"{model.course_asset.name}, {results['textspan']['objects']} objects in {n_scenes} two-object scenes:")
print(cm.table(results))
print("\nverdict:", cm.verdict(results, checked))
if my_winner is not None:
    assert my_winner in results, f"my_winner: one of {list(results)}"
    best = max(results, key=lambda m: results[m]["pointing_game"])
    print(f"you picked {my_winner}; the highest pointing game here: {best}")

# %% tags=["varies"]
names = list(results)
hit = [results[m]["pointing_game"] for m in names]
other = [results[m]["misses_on_other_object"] for m in names]
background = [results[m]["misses_on_background"] for m in names]
fig, ax = plt.subplots(figsize=(8, 3.8))
ax.barh(names, hit, color="tab:green", label="peak on the object")
ax.barh(names, other, left=hit, color="tab:orange", label="miss: on the other object")
ax.barh(names, background, left=[h + o for h, o in zip(hit, other)], color="tab:gray", label="miss: on the background")
chance = cm.chance_level(results)                 # the best map that never reads the prompt
ax.axvline(chance, color="k", ls="--", lw=1, label=f"measured chance ({chance:.2f})")
ax.invert_yaxis(); ax.set_xlim(0, 1); ax.set_xlabel("share of objects")
ax.set_title(f"where each method's peak lands, {model.course_asset.name}", fontsize=10)
ax.legend(fontsize=7, loc="lower right"); plt.tight_layout(); plt.show()

# %% [markdown]
# ## 5 · Maps of misclassified images
#
# ⏩ *Skip if short on time: run these cells without stopping to discuss them; nothing later needs the discussion.*
#
# Heatmaps in papers and course notes are usually shown for images the model gets right. Yet a map is computed for a
# *prompt*, whatever the model predicts. So for an image the model gets wrong, both methods can show where they see
# the true class and where they see the predicted one. Both maps below are relative to this test set's class prompts.

# %% tags=["varies"]
n_look = rehearsal_sized(200 if FAST else 1000, 20)
with torch.no_grad():
    batch = [eval_set[i] for i in range(n_look)]
    logits = torch.cat([model.encode_image(torch.stack([preprocess(im) for im, _ in batch[lo: lo + 100]]).to(device))
                        for lo in range(0, n_look, 100)]).float() @ eval_classes.T      # [n_look, C]
truth = torch.tensor([lab for _, lab in batch])
predicted = logits.argmax(dim=-1).cpu()
wrong_ids = (predicted != truth).nonzero().flatten().tolist()
print(f"{len(wrong_ids)} of {n_look} test images misclassified")
if not wrong_ids:   # a nearly perfect model: show the images it was least sure about instead
    top2 = logits.topk(2, dim=-1)
    wrong_ids = (top2.values[:, 0] - top2.values[:, 1]).cpu().argsort()[:3].tolist()
    predicted = top2.indices[:, 1].cpu()
    print("none misclassified: the 3 images with the smallest margin, with their runner-up class as 'predicted'")
shown = wrong_ids[:3]
fig, axes = plt.subplots(len(shown), 5, figsize=(11, 2.4 * len(shown)), squeeze=False)
for row, i in zip(axes, shown):
    picture = batch[i][0].convert("RGB").resize((SIZE, SIZE))
    x = preprocess(batch[i][0]).to(device)
    pair = [int(truth[i]), int(predicted[i])]
    # both relative to this test set's class prompts: the table's "textspan" and "legrad_last2_relative" maps
    ts_maps = cm.method_maps("textspan", model, x, eval_classes[pair], pair, eval_classes)
    lg_maps = cm.method_maps("legrad_last2_relative", model, x, eval_classes[pair], pair, eval_classes)
    row[0].imshow(picture)
    row[0].set_title(f"true: {eval_set.classes[pair[0]]}\npredicted: {eval_set.classes[pair[1]]}", fontsize=7)
    for ax, m, title in zip(row[1:], [ts_maps[0], ts_maps[1], lg_maps[0], lg_maps[1]],
                            ["TextSpan, true", "TextSpan, predicted", "LeGrad (last 2), true", "LeGrad (last 2), predicted"]):
        ax.imshow(overlay(picture, m)); ax.set_title(title, fontsize=7)
for ax in axes.flat: ax.axis("off")
plt.tight_layout(); plt.show()

# %% [markdown]
# Where the model confused two classes that share a colour or a shape, both maps often light up the same object: each
# class's direction is partly about the shared property. Neither method needs the prediction to be right; both answer
# "where is X?" for any X you ask about. LeGrad differentiates a score, so it applies to any ViT whose readout can be
# compared with a target; TextSpan's maps need a text encoder sharing the image's embedding space.
#
# ## 6 · Next to the published numbers
#
# Our table scores toy scenes with exact masks; the papers score real photographs, and each of their tables names
# its checkpoint:
#
# - LeGrad (Bousselham et al., 2024, [arXiv:2404.03214](https://arxiv.org/abs/2404.03214)): zero-shot segmentation
#   on ImageNet-S (pixel accuracy and mIoU, with TextSpan among the baselines), open-vocabulary segmentation on
#   OpenImages-V7 (p-mIoU), and a speed comparison in frames per second. Its abstract says the method aggregates the
#   signal over all layers; the authors' package `legrad-torch` reads the last two by default (`layer_index=-2` in
#   its code).
# - TextSpan (Gandelsman, Efros and Steinhardt, ICLR 2024, [arXiv:2310.05916](https://arxiv.org/abs/2310.05916)):
#   ImageNet-segmentation (4,276 validation images) against LRP, rollout, raw attention, GradCAM and Chefer et al.
#
# **Open task (~10 min).** Open LeGrad's paper, find the ImageNet-S table and the speed table, and write
# the LeGrad and TextSpan rows, with the checkpoint each used, into `published` below. Which differences between
# their setting and ours (photographs or drawn shapes, one object or two, the checkpoint) could change the ranking?

# %% tags=["varies"]
published = {}   # from the paper, e.g. {"LeGrad": ("pixel accuracy", "mIoU", "checkpoint"), "TextSpan": (...)}
print(f"ours ({model.course_asset.name}, toy scenes), mIoU, absolute / relative to the prompts:")
for method in ("textspan", "legrad_last2", "legrad_all"):
    absolute, relative = (method + "_absolute", method) if method == "textspan" else (method, method + "_relative")
    print(f"  {method:<13} {100 * results[absolute]['miou']:6.2f} / {100 * results[relative]['miou']:6.2f}")
for method, row in published.items():
    print(f"published, {method}: pixel accuracy {row[0]}, mIoU {row[1]} ({row[2]})")

# %% [markdown]
# ## 7 · Time and memory per map
#
# ⏩ *Skip if short on time: run these cells without stopping to discuss them; nothing later needs the discussion.*
#
# A speed claim ("TextSpan is faster", or frames per second for LeGrad against TextSpan) depends on what is timed,
# and on how many prompts. Here every way of making a map runs on the same model, image and prompts, in this run: a
# plain forward pass (the floor of any map that reads the model's output); our TextSpan map (one forward pass, then
# the texts through each head's readout); the decomposition in the authors' order of work (every head-token term in
# the residual width first, then `ln_post` and `proj` on each: `decompose.unfolded_decompose`, without notebook 05's
# folding); our LeGrad (last two blocks, every block); and the authors' `legrad-torch` where it is installed. First
# 5 prompts, then the ratios at 1, 5 and all 100 class prompts: a relative map (section 4) needs every one of them.

# %% tags=["varies"]
counts = (1, 5, rehearsal_sized(len(class_emb), 10))   # the last: every class prompt
by_count = {n: cm.map_costs(model, image, class_emb[:n], repeats=rehearsal_sized(1 if FAST else 3, 1)) for n in counts}
costs, base = by_count[5], by_count[5]["encode_image"]
for name, seconds in costs.items():
    if isinstance(seconds, float):
        print(f"  {name:<24} {1000 * seconds:8.1f} ms  {1 / seconds:8.1f} per second  {seconds / base:6.2f} x a forward pass")
if costs["legrad_torch"] is None:
    print("  legrad_torch: not measured here:", costs["legrad_torch_missing"])
for n, r in ((n, cm.cost_ratios(c)) for n, c in by_count.items()):
    theirs = f"{r['ours_over_legrad_torch']:.2f}" if r["ours_over_legrad_torch"] else "not measured"
    print(f"{n:>3} prompt{'s' if n > 1 else ' '}: TextSpan / our LeGrad {r['textspan_over_legrad']:.2f} (last 2 blocks), "
          f"{r['textspan_over_legrad_all_layers']:.2f} (every block); our LeGrad / legrad-torch {theirs}")

# %% [markdown]
# What to read off: a map that needs the model's output can't cost less than one forward pass, and our TextSpan map
# costs about one, for any number of prompts. LeGrad adds a backward pass through every block it reads, whose work
# grows with the prompts (legrad-torch reruns the whole model per prompt). So a speed ratio means little without its
# prompt count. The authors' order costs more than ours: it projects every head-token term from the residual width.
# A frames-per-second figure for "TextSpan" is a figure for one implementation, not for the method.
# `benchmarks/legrad_cost.py` measures the same ratios on ViT-B/16, with `legrad-torch` beside ours.
#
# **Memory.** Peak extra memory of one call with 5 prompts, each method measured in a fresh Python process (a notebook
# can't reset its own peak; the processes run side by side). In real mode the
# children build ViT-B/32 with random weights: memory doesn't depend on the weights. Linux only; elsewhere it says so.

# %% tags=["varies"]
arch = architecture_name(model)                           # measured on fresh random weights of the same shapes
peaks = cm.peak_memory_mbs(("textspan", "legrad_last2", "legrad_all"), arch, n_prompts=5)
for method, mb in peaks.items():
    print(f"  {method:<13} " + (f"{mb:7.1f} MiB extra" if mb is not None else "not measurable on this OS"))

# %% [markdown]
# ## 8 · Does a wrong prompt give a weak map?
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
# ## 9 · The notes' claims, against the measurements
#
# First the verdicts your own numbers give (computed, not typed in):

# %% tags=["varies"]
r = results
def verdict(ok): return "holds here" if ok else "does NOT hold here"
ts, lg = costs["textspan_map"], costs["legrad_last2"]
print(f"the premises:  LeGrad's {'holds' if lp['holds'] else 'FAILS'}, TextSpan's {'holds' if tp['holds'] else 'FAILS'} "
      f"-> {cm.verdict(r, checked)}")
print(f"'TextSpan is faster':  TextSpan/LeGrad (last 2) time per map = {ts / lg:.2f} -> {verdict(ts < lg)}")
print(f"'both follow the prompt':  pointing game TextSpan {r['textspan']['pointing_game']:.2f}, "
      f"LeGrad {max(r['legrad_last2']['pointing_game'], r['legrad_last2_relative']['pointing_game']):.2f} (best normalisation), "
      f"measured chance {chance:.2f}")
best_ts = max(("textspan", "textspan_absolute"), key=lambda m: r[m]["miou"])      # each at its best normalisation
best_lg = max(("legrad_last2", "legrad_last2_relative"), key=lambda m: r[m]["miou"])
better = max((best_ts, best_lg), key=lambda m: r[m]["miou"])
print(f"'TextSpan covers the whole object, LeGrad the discriminative part':  mIoU {best_ts} {r[best_ts]['miou']:.2f}, "
      f"{best_lg} {r[best_lg]['miou']:.2f} -> {better} matches the whole-object masks better")
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
# | "TextSpan is faster" | time per map, TextSpan / LeGrad, in section 7 and in `benchmarks/legrad_cost.py` | check your ratio: one forward pass serves every prompt, while LeGrad's cost grows with the prompts and the blocks it reads |
# | LeGrad "focuses on discriminative parts", TextSpan on the whole object | mIoU and mAP against whole-object masks | on the toy world, the method with the higher mIoU covers more of the object |
# | "LeGrad can be unstable" | not measured here; its maps are min-max scaled, so a weak signal is stretched to [0, 1] | section 8 shows what that scaling hides |
# | both explain "which regions matter for the prompt" | pointing game far above the measured chance (centre prior, random map)? | only where the method's premise holds on the model; a method near chance is not reading the prompt |
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
# | premises | token-mean readout accuracy; heads with roles | `compare_maps.premises`, printed before any verdict |
# | comparison | both normalisations, measured chance, where misses land, mIoU, mAP | `python -m course_utils.compare_maps` |
# | cost | forward pass, TextSpan, authors' order, LeGrad, legrad-torch | `compare_maps.map_costs`, `benchmarks/legrad_cost.py` |
#
# ## Quiz
# 1. Why must the attention probabilities be computed explicitly for LeGrad?
# 2. Why does LeGrad's map for a prompt naming something absent still peak at 1?
# 3. The authors' package runs the image P times for P prompts; ours runs it once. Where does the P reappear in ours?
# 4. The centre prior ignores prompt and image. Why does it score so low on two-object scenes, and what would a
#    prompt-blind "find the salient object" map score on one-object scenes?
# 5. Why does the notebook refuse to rank the methods when a premise fails, even if one method scores higher?
# 6. For TextSpan, the map of a centred prompt is its relative map. Why is that not so for LeGrad?
#
# <details><summary>Answers</summary>
#
# 1. Autograd can only give gradients with respect to tensors in the graph; fused attention
#    (`scaled_dot_product_attention`) computes the output without ever storing the probabilities.
# 2. Min-max scaling maps the largest value to 1 whatever its size. Only the unscaled relevance can show weakness.
# 3. In the batched backward pass: P vector-Jacobian products, vectorised, through the chosen blocks only.
# 4. The objects sit in the corners' regions, so the centre lies between them, on the background. On one-object
#    scenes a salient-object map would score close to 1: any map that finds "the object" wins. Single-object
#    benchmarks can't tell a method that reads the prompt from one that finds salient things; that is why this course
#    scores two-object scenes, and measures chance instead of assuming it.
# 5. A method whose premise fails measures the model, not the method: LeGrad on a model whose token-mean readout is
#    noise would lose to TextSpan on *any* scenes, and the ranking would say nothing about LeGrad.
# 6. TextSpan's map is linear in the prompt: map(t − t̄) = map(t) − map(t̄), and map(t̄) is the mean of the class
#    prompts' maps. LeGrad keeps only the positive part of each gradient (and min-max scales), so the map of a
#    difference is not the difference of the maps. Its relative map also costs one map per class prompt; the centred
#    prompt, one map.
# </details>
#
# ## Further reading
#
# - Bousselham, Boggust, Chaybouti, Strobelt and Kuehne, "LeGrad: An Explainability Method for Vision Transformers
#   via Feature Formation Sensitivity", [arXiv:2404.03214](https://arxiv.org/abs/2404.03214); code:
#   [WalBouss/LeGrad](https://github.com/WalBouss/LeGrad) (package `legrad-torch`). This notebook follows its method
#   section: the per-layer readout, the gradient with respect to attention, and the aggregation over layers.
# - Gandelsman, Efros and Steinhardt, "Interpreting CLIP's Image Representation via Text-Based Decomposition", ICLR
#   2024, [arXiv:2310.05916](https://arxiv.org/abs/2310.05916); code:
#   [yossigandelsman/clip_text_span](https://github.com/yossigandelsman/clip_text_span): the method LeGrad is
#   compared with here.
# - Abnar and Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020,
#   [arXiv:2005.00928](https://arxiv.org/abs/2005.00928): attention rollout, one of our baselines.
# - Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016,
#   [arXiv:1608.00507](https://arxiv.org/abs/1608.00507): the pointing game.
