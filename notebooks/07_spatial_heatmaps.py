# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
# ---

# %% [markdown]
# # 07 · Spatial heatmaps: where in the image does a prompt live?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/inside-clip/inside-clip/blob/main/notebooks/07_spatial_heatmaps.ipynb)
#
# **What you will be able to do after this notebook**
# - read the heatmap line from the course notes (the "critical line") with the real shapes, and say what every index and every sum does;
# - turn patch scores into a picture with einops and interpolation, and overlay it on the image;
# - explain the difference between an *absolute* map and a *relative* one (minus the mean over prompts), and measure it;
# - find which layers and heads draw the map;
# - score a heatmap as a zero-shot segmentation against ground-truth masks (pixel accuracy, mIoU, mAP, pointing game).
#
# **Expected time:** about 68 minutes at a learner's pace (28 of them on the exercises and open tasks; estimated as the instructor guide explains). Offline it runs in well under a minute on a laptop CPU.
#
# Real mode: openai's ViT-B/32, with photos that ship inside scikit-image (a cat, an astronaut, a cup of coffee: no
# download) and toy-world scenes drawn at 224 px for the scores. Offline: ToyCLIP and the toy world at 64 px. The
# toy world knows every object's pixels, which is what lets us *score* a map instead of admiring it.

# %% tags=["colab-setup"]
# Colab setup: on Colab this installs the course package (keeping Colab's torch); anywhere else it does nothing.
import sys
if "google.colab" in sys.modules:
    # !git clone -q --depth 1 -b main https://github.com/inside-clip/inside-clip /content/inside-clip
    # !pip install -q --no-deps -e /content/inside-clip openai-clip einops ftfy regex
    sys.path.insert(0, "/content/inside-clip")

# %% tags=["varies"]
# Heatmaps from the decomposition, and the toy world's masks to score them against.
import numpy as np
import torch
import torch.nn.functional as F
import matplotlib.pyplot as plt
import ipywidgets as widgets
from einops import rearrange

from course_utils import toyworld as tw
from course_utils.checks import check, assert_same
from course_utils.decompose import decompose
from course_utils.data import model_view
from course_utils.env import banner, get_device, is_real, rehearsal_sized, start_lesson
from course_utils.heatmaps import overlay, textspan_heatmap
from course_utils.metrics import average_precision, binarize, pixel_accuracy, pointing_hit, standard_tolerance
from course_utils.models import ARCHITECTURES, load_clip, model_info, random_clip
from course_utils.zero_shot import encode_texts, zero_shot_classifier

start_lesson(seed=0)
device = get_device()

# %% tags=["varies"]
model, preprocess = load_clip(device=device)   # the course's model: ViT-B/32 unless COURSE_MODEL names another
model = model.float()
MODE = banner(model)                            # what produced every number below, read from what was loaded
REAL_MODEL = is_real(model)                     # the scenes are always the toy world's: they come with masks
info = model_info(model)
SIZE = info.image_resolution                       # 224 for openai's ViTs, 64 for ToyCLIP
CLASS_NAMES = [c.replace("_", " ") for c in tw.CLASSES]
class_emb = zero_shot_classifier(model, tw.CLASSES)   # [100, d], unit length: "a photo of a red star."
FAST = device.type == "cpu" and REAL_MODEL        # a 224-px ViT on a laptop CPU: 100 scenes instead of 200
scenes = tw.scenes(rehearsal_sized(100 if FAST else 200, 10), n_objects=2, size=SIZE)  # with masks; the same for everyone
tolerance = standard_tolerance(SIZE)
print(f"{model.course_asset.name}: {info.layers} layers x {info.heads} heads, grid {info.grid}x{info.grid}, d = {info.embed_dim}; "
      f"{len(scenes)} scenes at {SIZE} px")

# %% [markdown]
# ## 1 · The critical line, with the real shapes
#
# The course notes spend a whole note on one line:
#
# ```python
# attention_map = attentions[0, :, 1:, :].sum(axis=(0, 2)) @ class_embedding.T
# ```
#
# `attentions` is the decomposition of notebook 05: the direct contribution of every layer × source token × head to
# the image embedding, already through `ln_post` and `proj`. Let's get its shape from real architectures rather than
# from memory: one image through a randomly initialised ViT-B/32 (the shapes don't depend on the weights).

# %% tags=["nbval-check-output"]
b32 = random_clip("ViT-B/32").float()
with torch.no_grad():
    parts = decompose(b32, torch.randn(1, 3, 224, 224))
print("ViT-B/32 decomposition: attn", list(parts.attn.shape), "= [B, L, N, H, d]")
for name in ("ViT-B/32", "ViT-B/16", "ViT-L/14"):
    a = ARCHITECTURES[name]
    grid = a["image_resolution"] // a["vision_patch_size"]
    shape = [1, a["vision_layers"], grid * grid + 1, a["vision_width"] // 64, a["embed_dim"]]
    print(f"{name:<9} attn {shape}   (width before proj: {a['vision_width']})")
del b32

# %% [markdown]
# > **A kind correction.** The notes write ViT-L/14's tensor as `[1, 24, 257, 16, 1024]`. The first four numbers are
# > right: 1 image, 24 layers, 1 CLS + 16 × 16 patches, 16 heads. But the last axis is **768**, not 1024. 1024 is
# > ViT-L/14's *width* inside the transformer; the decomposition is taken after `proj`, which maps 1024 → 768, the
# > space the text embeddings live in (they must: we take a dot product with them). `tests/test_decompose.py` builds a
# > random ViT-L/14 and checks `[1, 24, 257, 16, 768]`.
# >
# > A second, smaller one: the notes call the dot product a cosine similarity "because the vectors are normalised".
# > The text embeddings are; the per-patch vectors are not (each is a small piece of a sum), so the score is a
# > projection, not a cosine. That is fine for a map: what matters is where it is large.
#
# Now the line piece by piece, on our model and one scene:

# %% tags=["varies"]
scene = scenes[0]
image = preprocess(scene.image).to(device)                   # [3, SIZE, SIZE], where the model is
names = [CLASS_NAMES[o.label] for o in scene.objects]
with torch.no_grad():
    attn = decompose(model, image[None]).attn                # [1, L, N, H, d]
print("attentions                          ", list(attn.shape))
print("attentions[0, :, 1:, :]             ", list(attn[0, :, 1:, :].shape), " image: 0, all layers, patches only (CLS dropped), all heads")
per_patch = attn[0, :, 1:, :].sum(axis=(0, 2))
print(".sum(axis=(0, 2))                   ", list(per_patch.shape), "    summed over layers (axis 0) and heads (axis 2)")
line = per_patch @ class_emb.T
print("@ class_embedding.T                 ", list(line.shape), "    one score per patch and prompt")
print("objects in this scene:", names)


# %% [markdown]
# ### Exercise 1 · patch_scores · 🟢 easy · ~5 min
# The critical line for a whole batch: `attn` `[B, L, N, H, d]`, texts `[P, d]` → `[B, P, N-1]` (prompts before
# patches, the layout the next steps want).
# <details><summary>Hint 1 · the idea</summary>
#
# For each patch, sum its terms over layers and heads, then dot with every text. Drop the CLS token.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# `attn` is `[B, L, N, H, d]`: slice tokens from 1, sum over the L and H axes to get `[B, N-1, d]`; a product with
# the texts' transpose gives `[B, N-1, P]`; swap the last two axes.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def patch_scores(attn, texts):
    # BEGIN SOLUTION
    per_patch = attn[:, :, 1:].sum(dim=(1, 3))               # [B, N-1, d]
    return (per_patch @ texts.T).transpose(1, 2)            # [B, P, N-1]
    # END SOLUTION


# %% tags=["nbval-check-output"]
patch_scores = check("patch_scores", patch_scores)


# %% [markdown]
# ## 2 · From patches to a picture
#
# The N − 1 patch scores are in *reading order*: row by row, left to right, as the patch convolution produced them
# (notebook 04). `rearrange(scores, "... (gh gw) -> ... gh gw")` puts them back on the g × g grid; the names say what
# happens, which a bare `.reshape` does not. Then bilinear interpolation stretches the grid to the image.
#
# ### Exercise 2 · to_grid · 🟢 easy · ~4 min
# `[..., g²]` → `[..., g, g]`, for any number of leading axes.
# <details><summary>Hint 1 · the idea</summary>
#
# The scores are in reading order: row by row. Split the last axis into (row, column) of a square grid.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# `g` is the integer square root of the last axis' length; an einops pattern with `...` for the leading axes splits
# it into `gh gw`.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def to_grid(scores):
    # BEGIN SOLUTION
    g = int(round(scores.shape[-1] ** 0.5))
    return rearrange(scores, "... (gh gw) -> ... gh gw", gh=g)
    # END SOLUTION


# %% tags=["nbval-check-output"]
to_grid = check("to_grid", to_grid)

# %% tags=["varies"]
scores = patch_scores(attn, class_emb)                                   # [1, 100, g²]
grid_maps = to_grid(scores)                                               # [1, 100, g, g]
maps = F.interpolate(grid_maps, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0]   # [100, SIZE, SIZE]
assert_same("critical line -> grid -> upsample == textspan_heatmap(relative=False)",
            maps, textspan_heatmap(model, image, class_emb, relative=False), atol=1e-4)
label = scene.objects[0].label
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
axes[0].imshow(scene.image); axes[0].set_title("scene")
axes[1].imshow(grid_maps[0, label].cpu(), cmap="jet"); axes[1].set_title(f"{info.grid}x{info.grid} grid")
axes[2].imshow(overlay(scene.image, maps[label])); axes[2].set_title(f"upsampled: '{CLASS_NAMES[label]}'")
for ax in axes: ax.axis("off")
plt.tight_layout(); plt.show()


# %% [markdown]
# ## 3 · Absolute or relative?
#
# The notes' code subtracts the mean over prompts, `attention_map[idx] - np.mean(attention_map, axis=0)`, while its
# text calls the result "absolute, each prompt independent". Both maps are useful; they answer different questions.
#
# - **Absolute**: the prompt's own scores. Every prompt picks up what all prompts share: "there is an object here",
#   the image's overall style. Maps for different prompts then look alike.
# - **Relative**: minus the mean over a set of prompts (here: all 100 classes). What is left is what is *specific* to
#   this prompt, compared with the others.
#
# ### Exercise 3 · relative_to_prompts · 🟢 easy · ~3 min
# maps `[..., P, H, W]` → the same shape, minus the mean over the P prompts.
# <details><summary>Hint 1 · the idea</summary>
#
# Subtract, at every pixel, the average over the prompts.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# The prompt axis is `-3` of `[..., P, H, W]`; reduce with `keepdim=True` so it broadcasts back.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def relative_to_prompts(maps):
    # BEGIN SOLUTION
    return maps - maps.mean(dim=-3, keepdim=True)
    # END SOLUTION


# %% tags=["nbval-check-output"]
relative_to_prompts = check("relative_to_prompts", relative_to_prompts)

# %% [markdown]
# **Predict, then run.** Every scene below has two objects, and each prompt names one of them. Which maps will point
# at the *right* object more often: absolute or relative? Write `"absolute"` or `"relative"` in `my_pick`; the cell
# after the pointing game tells you.

# %%
my_pick = None   # "absolute" or "relative"

# %% [markdown]
# A picture for one scene, then a number over all the scenes: the pointing game (does the map's peak land on the
# object whose class the prompt names, within the standard tolerance of 15 px at 224 px?).

# %% tags=["varies"]
fig, axes = plt.subplots(2, 3, figsize=(8, 5.5))
for row, (kind, m) in enumerate([("absolute", maps), ("relative", relative_to_prompts(maps))]):
    axes[row, 0].imshow(scene.image); axes[row, 0].set_ylabel(kind)
    for col, obj in enumerate(scene.objects, start=1):
        axes[row, col].imshow(overlay(scene.image, m[obj.label]))
        axes[row, col].set_title(f"{kind}: '{CLASS_NAMES[obj.label]}'", fontsize=9)
for ax in axes.flat: ax.set_xticks([]); ax.set_yticks([])
plt.tight_layout(); plt.show()

def pointing(kind, layers=None, heads=None, scenes=scenes):
    hits = []
    for s in scenes:
        m = textspan_heatmap(model, preprocess(s.image), class_emb, layers, heads, relative=(kind == "relative"))
        hits += [pointing_hit(m[o.label], o.mask, tolerance) for o in s.objects]
    return float(np.mean(hits))

for kind in ("absolute", "relative"):
    print(f"pointing game, {kind:<8} maps, {2 * len(scenes)} objects: {pointing(kind):.3f}")

# %% tags=["varies"]
if my_pick is not None:
    assert my_pick in ("absolute", "relative"), 'my_pick: "absolute" or "relative"'
    better = max(("absolute", "relative"), key=pointing)
    print(f"you picked {my_pick}; the better one here is {better}")

# %% [markdown]
# What would a map that ignores the prompt score? Don't guess: measure it. Notebook 08's scoring (`compare_maps`, also
# a command line tool) scores the same maps on the same scenes next to two maps that ignore prompt and image: a centre
# prior (highest at the image centre) and seeded random noise on the patch grid. The check below ties our `pointing`
# to it, so this notebook and notebook 08 can never disagree.

# %% tags=["varies"]
from course_utils import compare_maps as cm

scored = cm.compare(model, n_scenes=len(scenes), methods=("textspan_absolute", "textspan", "centre_prior", "random_map"),
                    progress=False)
assert_same("pointing(relative) == compare_maps' textspan", torch.tensor(pointing("relative")),
            torch.tensor(scored["textspan"]["pointing_game"]), atol=1e-3)
for method, r in scored.items():
    print(f"{method:<18} pointing game {r['pointing_game']:.3f}   misses on the other object {r['misses_on_other_object']:.3f}, "
          f"on the background {r['misses_on_background']:.3f}")

# %% [markdown]
# The chance maps are far below one half: objects cover a small part of a scene, so a map that ignores the prompt
# mostly lands on the background, and a centre prior lands between the objects. The
# absolute maps share a large common part (every class prompt lights up both objects), so which object wins is decided
# by small differences. Subtracting the mean removes the shared part. On the bundled ToyCLIP both kinds point about
# equally well; the gain shows in how much of the object the map covers (notebook 08's mIoU). That is why the course's
# heatmaps, like the notes' code, are relative by default, and why "absolute" in the notes' text is a misnomer for
# what its code does.
#
# ## 4 · Which layers and heads draw the map?
#
# The sum over layers and heads can be split again. The direct effect of early layers is small (notebook 05's
# ablations), so their maps should be weak and noisy; the late layers should do the pointing.

# %% [markdown]
# Relative maps are linear in the text: a prompt's score minus the mean score is the dot product with *the text minus
# the mean text*. So one decomposition per scene gives every layer's and every head's map at once.

# %% tags=["varies"]
centred = class_emb - class_emb.mean(dim=0)                # relative = dot with (text - mean text)

def per_part_maps(s):
    """[L, H, 2, SIZE, SIZE]: each layer's and head's relative map for the scene's two objects."""
    with torch.no_grad():
        patches = decompose(model, preprocess(s.image)[None]).attn[0, :, 1:]          # [L, g², H, d]
    scores = torch.einsum("lnhd,pd->lhpn", patches, centred[[o.label for o in s.objects]])  # [L, H, 2, g²]
    grids = rearrange(to_grid(scores), "l h p gh gw -> (l h) p gh gw")
    up = F.interpolate(grids, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return rearrange(up, "(l h) p y x -> l h p y x", l=info.layers)

hits_layer, hits_head = np.zeros(info.layers), np.zeros(info.heads)
for s in scenes[:60]:                                    # 120 objects (fewer in the CI rehearsal)
    m = per_part_maps(s)
    for i, o in enumerate(s.objects):
        hits_layer += [pointing_hit(m[l, :, i].sum(0), o.mask, tolerance) for l in range(info.layers)]
        hits_head += [pointing_hit(m[-1, h, i], o.mask, tolerance) for h in range(info.heads)]
n_objects = 2 * len(scenes[:60])
per_layer, per_head = hits_layer / n_objects, hits_head / n_objects
m = per_part_maps(scene).sum(dim=1)                        # [L, 2, SIZE, SIZE]
fig, axes = plt.subplots(1, info.layers + 1, figsize=(2.2 * (info.layers + 1), 2.4))
axes[0].imshow(scene.image); axes[0].set_title(f"'{CLASS_NAMES[label]}'", fontsize=9)
for l, ax in enumerate(axes[1:]):
    ax.imshow(overlay(scene.image, m[l, 0])); ax.set_title(f"layer {l}: {per_layer[l]:.2f}", fontsize=9)
for ax in axes: ax.axis("off")
plt.suptitle(f"relative map from one layer at a time (pointing game on {n_objects} objects in the titles)", fontsize=10)
plt.tight_layout(); plt.show()
print(f"last layer ({info.layers - 1}), one head at a time, pointing game on {n_objects} objects:")
print("  " + "  ".join(f"H{h}: {p:.2f}" for h, p in enumerate(per_head)))


# %% [markdown]
# ## 5 · Zero-shot segmentation, scored
#
# A heatmap becomes a segmentation by a threshold. The protocol TextSpan and LeGrad report (ImageNet-Segmentation)
# binarises each map at **its own mean**, then scores:
#
# - **pixel accuracy**: the share of pixels labelled correctly;
# - **mIoU**: the mean, over the two classes foreground and background, of intersection over union;
# - **mAP**: average precision of the raw scores as a detector of foreground pixels (no threshold).
#
# The TextSpan paper ([arXiv:2310.05916](https://arxiv.org/abs/2310.05916)) reports these three numbers on
# ImageNet-Segmentation for its main model, OpenCLIP ViT-H-14, next to earlier explainability methods; read them in its
# segmentation table, not in later papers' copies, which use other checkpoints and settings. Our numbers are on another
# dataset and model, so compare the *ranking* of methods (notebook 08), not the values.
#
# ### Exercise 4 · mean_iou · 🟡 medium · ~6 min
# `mean_iou(predicted, mask)`: two boolean `[H, W]` arrays → a float. An empty union counts as IoU 1.
# <details><summary>Hint 1 · the idea</summary>
#
# Two IoUs: of the foreground (predicted vs mask) and of the background (their negations); return their mean.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# IoU = |A ∩ B| / |A ∪ B| with boolean `&` and `|`; guard against an empty union (count it as 1).
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def mean_iou(predicted, mask):
    # BEGIN SOLUTION
    p, m = torch.as_tensor(predicted).bool(), torch.as_tensor(mask).bool()
    ious = []
    for a, b in ((p, m), (~p, ~m)):
        union = (a | b).sum().item()
        ious.append((a & b).sum().item() / union if union else 1.0)
    return sum(ious) / 2
    # END SOLUTION


# %% tags=["nbval-check-output"]
mean_iou = check("mean_iou", mean_iou)

# %% tags=["varies"]
rows = []
for s in scenes:
    m = textspan_heatmap(model, preprocess(s.image), class_emb)
    for o in s.objects:
        pred = binarize(m[o.label])
        rows.append((pixel_accuracy(pred, o.mask), mean_iou(pred, o.mask), average_precision(m[o.label], o.mask)))
acc, miou, ap = (100 * np.mean(col) for col in zip(*rows))
print(f"{model.course_asset.name}, TextSpan relative maps, {len(rows)} objects in {len(scenes)} two-object scenes:")
print(f"  pixel accuracy {acc:5.1f}   mIoU {miou:5.1f}   mAP {ap:5.1f}")
print("  (ImageNet-Segmentation, ViT-H/14, for scale only: 75.2 / 54.5 / 81.6)")
s = scenes[3]
m = textspan_heatmap(model, preprocess(s.image), class_emb)
fig, axes = plt.subplots(1, 4, figsize=(9, 2.6))
o = s.objects[0]
for ax, img, title in zip(axes, [s.image, overlay(s.image, m[o.label]), binarize(m[o.label]), o.mask],
                          ["scene", f"'{CLASS_NAMES[o.label]}'", "map > its mean", "ground truth"]):
    ax.imshow(img); ax.set_title(title, fontsize=9); ax.axis("off")
plt.tight_layout(); plt.show()

# %% [markdown]
# Thresholding at the map's own mean always calls a large share of the image foreground, so mIoU is modest even when
# the peak is right; mAP, which needs no threshold, is kinder. Notebook 08 puts every method through the same scoring.
#
# ## 6 · Photos (real mode) and your own prompts
#
# ⏩ *Skip if short on time: run these cells without stopping to discuss them; nothing later needs the discussion.*
#
# In real mode, three photos that ship with scikit-image. Offline, ToyCLIP has never seen a photo, so we stay in the
# toy world. Then a widget: type any prompt and see its map, relative to the 100 class prompts plus your own.

# %% tags=["varies"]
if REAL_MODEL:
    from PIL import Image
    from skimage import data as skdata
    photos = {"chelsea": (skdata.chelsea(), ["a cat", "a wall", "whiskers"]),
              "astronaut": (skdata.astronaut(), ["a face", "an american flag", "a space suit"]),
              "coffee": (skdata.coffee(), ["a cup of coffee", "a spoon", "a saucer"])}
    fig, axes = plt.subplots(3, 4, figsize=(10, 7.5))
    for row, (name, (pixels, prompts)) in zip(axes, photos.items()):
        photo = Image.fromarray(pixels).convert("RGB")
        x = preprocess(photo)                                        # [3, 224, 224]: resized, then the centre cropped
        shown = np.asarray(model_view(photo, preprocess))            # the same pixels, before normalisation
        m = textspan_heatmap(model, x, F.normalize(encode_texts(model, prompts), dim=-1))
        row[0].imshow(shown); row[0].set_title(name)
        for ax, p, mp in zip(row[1:], prompts, m):
            ax.imshow(overlay(shown, mp)); ax.set_title(p, fontsize=9)
    for ax in axes.flat: ax.axis("off")
    plt.tight_layout(); plt.show()
else:
    print("Offline: ToyCLIP knows only the toy world, so the photos are skipped. Try the widget below.")


# %% tags=["varies"]
def show_prompt(scene_index=0, prompt="a photo of a red star", relative=True):
    s = scenes[scene_index]
    try:
        mine = F.normalize(encode_texts(model, [prompt]), dim=-1)
    except ValueError as err:
        print(err); return
    m = textspan_heatmap(model, preprocess(s.image), torch.cat([mine, class_emb]), relative=relative)[0]
    fig, axes = plt.subplots(1, 2, figsize=(6, 3))
    axes[0].imshow(s.image); axes[0].set_title(", ".join(CLASS_NAMES[o.label] for o in s.objects), fontsize=9)
    axes[1].imshow(overlay(s.image, m)); axes[1].set_title(prompt, fontsize=9)
    for ax in axes: ax.axis("off")
    plt.show()

widgets.interact(show_prompt, scene_index=widgets.IntSlider(0, 0, len(scenes) - 1),
                 prompt=widgets.Text("a photo of a red star", continuous_update=False), relative=True);

# %% [markdown]
# **Open task (~10 min): a prompt that fools the map.** Find a scene and a prompt whose relative map points at the wrong
# object or at the background: try a class that shares the colour of one object and the shape of the other. Put the
# scene number and the class name below, and explain the map in one sentence. The cell checks that the class exists
# and shows both maps.

# %% tags=["varies"]
my_scene, my_class = 3, "red_star"                           # replace with yours
assert my_class in tw.CLASSES, f"my_class: one of the toy world's classes, e.g. {tw.CLASSES[:3]}"
probe = tw.scenes(my_scene + 1, n_objects=2, size=SIZE)[my_scene]
m = textspan_heatmap(model, preprocess(probe.image), class_emb, relative=True)[tw.CLASSES.index(my_class)]
fig, axes = plt.subplots(1, 2, figsize=(5.5, 2.8))
axes[0].imshow(probe.image); axes[0].set_title(" + ".join(CLASS_NAMES[o.label] for o in probe.objects), fontsize=8)
axes[1].imshow(overlay(probe.image, m)); axes[1].set_title(f"relative map: {my_class}", fontsize=8)
for ax in axes: ax.axis("off")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## Summary
#
# | step | code | checked against |
# |---|---|---|
# | the critical line | `attn[:, :, 1:].sum((1, 3)) @ texts.T` | `heatmaps.patch_scores`; shapes from real architectures |
# | to the grid | `rearrange("... (gh gw) -> ... gh gw")` | `heatmaps.to_grid` |
# | to the image | `F.interpolate(..., mode="bilinear")` | `textspan_heatmap(relative=False)` |
# | relative map | minus the mean over prompts | `heatmaps.relative_to_prompts`; pointing game, both kinds |
# | segmentation | binarise at the mean; pixel acc, mIoU, mAP | `metrics`, against toy-world masks |
#
# ## Quiz
# 1. In `attentions[0, :, 1:, :]`, which axis does `1:` cut, and why?
# 2. ViT-L/14's decomposition ends in 768, not 1024. What would break if it ended in 1024?
# 3. A prompt's absolute map lights up both objects in a scene. What does the relative map remove, and relative to what?
# 4. Why is mIoU low even when the pointing game is high?
# 5. The patch scores are in reading order. What would `rearrange(scores, "(gw gh) -> gh gw")` draw?
#
# <details><summary>Answers</summary>
#
# 1. The source-token axis (N): it drops token 0, the CLS token, which has no place on the image grid.
# 2. The dot product with the text embeddings (768-d for ViT-L/14) would not be defined: the decomposition must be
#    taken in the shared embedding space, after `proj`.
# 3. The part all prompts share ("an object is here"), estimated by the mean over the chosen set of prompts (here the
#    100 classes). A different set gives a different relative map.
# 4. The threshold (the map's own mean) marks a large share of pixels as foreground, and the map is blurry at patch
#    resolution; the peak can be right while the region is too big.
# 5. The transpose of the map: mirrored across the diagonal, so objects at the top right would show at the bottom left.
# </details>
#
# ## Further reading
#
# - Gandelsman, Efros and Steinhardt, "Interpreting CLIP's Image Representation via Text-Based Decomposition", ICLR
#   2024, [arXiv:2310.05916](https://arxiv.org/abs/2310.05916); code:
#   [yossigandelsman/clip_text_span](https://github.com/yossigandelsman/clip_text_span). This notebook follows the
#   decomposition into image tokens and its use as a zero-shot segmenter.
# - Gandelsman et al.'s project page,
#   [yossigandelsman.github.io/clip_decomposition](https://yossigandelsman.github.io/clip_decomposition/), shows the
#   paper's heatmaps for real photos.
