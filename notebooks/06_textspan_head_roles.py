# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
# ---

# %% [markdown]
# # 06 · TextSpan: what does each head mean, in words?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/inside-clip/inside-clip/blob/main/notebooks/06_textspan_head_roles.ipynb)
#
# **What you will be able to do after this notebook**
# - explain TextSpan (Gandelsman et al., ICLR 2024): a greedy search for the texts that span what a head writes;
# - implement it in four small steps, and check your version against `course_utils.textspan`;
# - browse the heads of the last layers, with their texts and the images at the ends of their main direction;
# - measure how much of the model's zero-shot accuracy a few words per head keep.
#
# **Expected time:** about 77 minutes at a learner's pace (43 of them on the exercises and open tasks; estimated as the instructor guide explains). It runs in under a minute offline on a laptop CPU. In
# real mode, encoding the 2,928 descriptions and 1,000 images takes a few minutes on CPU.
#
# Real mode: openai's ViT-B/32, CIFAR-100 and the course's pool of 2,928 photo descriptions. Offline: ToyCLIP,
# toy-world scenes and a pool of toy-world phrases (every colour, shape, pattern, position, size, count, background, plus
# distractors). Both pools are in `data/`, written by `python -m course_utils.pools`.

# %% tags=["colab-setup"]
# Colab setup: on Colab this installs the course package (keeping Colab's torch); anywhere else it does nothing.
import sys
if "google.colab" in sys.modules:
    # !git clone -q --depth 1 -b main https://github.com/inside-clip/inside-clip /content/inside-clip
    # !pip install -q --no-deps -e /content/inside-clip openai-clip einops ftfy regex
    sys.path.insert(0, "/content/inside-clip")

# %% tags=["varies"]
# TextSpan on the decomposition's per-head outputs, with a pool of descriptions to name each head.
import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from course_utils import ablation, pools, toyworld as tw
from course_utils.checks import check
from course_utils.data import load_cifar100
from course_utils.decompose import head_contributions
from course_utils.env import banner, get_device, is_real, rehearsal_sized, start_lesson
from course_utils.models import load_clip, model_info
from course_utils.textspan import (default_rank, jitter_stability, property_shares, random_head_outputs,
                                   replace_with_spans, textspan, textspan_all)
from course_utils.zero_shot import SINGLE_TEMPLATE, accuracy, encode_texts, zero_shot_classifier

start_lesson(seed=0)

# %% tags=["varies"]
device = get_device()
test_set = load_cifar100(train=False)
model, preprocess = load_clip(device=device)   # the course's model: ViT-B/32 unless COURSE_MODEL names another
model = model.float()
MODE = banner(model, test_set)                  # what produced every number below, read from what was loaded
REAL_MODEL, REAL_DATA = is_real(model), is_real(test_set)
info = model_info(model)
texts, properties = pools.load_pool("real" if REAL_MODEL else "toy")   # ToyCLIP knows only the toy world's words
text_emb = encode_texts(model, texts).cpu()            # tokenise + encode in batches of 256
print(f"{model.course_asset.name}: {len(texts)} descriptions -> text embeddings {tuple(text_emb.shape)}")
print("e.g.", texts[:3], "...")

# %% [markdown]
# The images whose head outputs we explain. Real mode: 1,000 CIFAR-100 test images (all 10,000 on a GPU). Offline:
# 2,000 toy-world scenes with one to three objects, so that position and count vary too.

# %% tags=["varies"]
FAST = device.type == "cpu"
ids = torch.randperm(len(test_set), generator=torch.Generator().manual_seed(0))[:rehearsal_sized(1000, 100)].tolist() if FAST else list(range(len(test_set)))
labelled = head_contributions(model, torch.utils.data.Subset(test_set, ids), preprocess, batch_size=64)  # section 4 too
if REAL_DATA:       # the same CIFAR-100 images serve both: one pass through the model, not two
    contrib, analysis_images = labelled, [test_set[i][0] for i in ids]
else:               # toy scenes with one to three objects, so that position and count vary too
    analysis_images = [s.image for s in tw.scenes(2000)]
    contrib = head_contributions(model, [(img, 0) for img in analysis_images], preprocess, batch_size=64)
L, H = info.layers, info.heads
LATE = [L - 2, L - 1] if L <= 6 else list(range(L - 4, L))     # ToyCLIP's last 2 of 6 layers; a real ViT's last 4
print(f"head outputs: {tuple(contrib.heads.shape)} = [images, layers, heads, d]; analysing layers {LATE}")


# %% [markdown]
# ## 1 · The algorithm
#
# For one head we have its outputs over K images, $C \in \mathbb{R}^{K \times d}$ (token-summed, normalised convention,
# from notebook 05), and M text embeddings $T \in \mathbb{R}^{M \times d}$.
#
# 1. **Restrict the texts** to what the head can express: project them onto the top-$r$ right singular vectors of the
#    outputs $C$ (as they are: the authors' code takes the SVD before centring). A head's output is its values times
#    $W^h_O$, so it spans at most as many directions as the head is wide; section "Checking the authors' default"
#    below is about choosing $r$. Here $r$ is the outputs' numerical rank (`default_rank`).
# 2. **Greedy picks.** Centre the outputs. Score each text by the variance, over the images, of $C t_j$; pick the best; then remove its unit
#    direction $u$ from the outputs *and* from all texts ($X \leftarrow X - (X u) u^\top$), so the next pick must explain
#    something new. Repeat m times.
#
# The picked directions are orthonormal, so their span gives a reconstruction of the head, and the share of the head's
# variance it explains.
#
# ### Exercise 1 · restrict_to_top_directions · 🟡 medium · ~8 min
# `restrict_to_top_directions(texts, outputs, rank)`: texts `[M, d]`, outputs `[K, d]` → `[M, d]`.
# <details><summary>Hint 1 · the idea</summary>
#
# Project every text onto the subspace spanned by the head's top-r right singular vectors (of the outputs as they
# are, not centred).
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# `torch.linalg.svd(..., full_matrices=False)` returns `Vh` `[min(K,d), d]`; keep its first `rank` rows as a basis
# `[r, d]`. Projecting onto an orthonormal basis is two matrix products.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def restrict_to_top_directions(texts, outputs, rank):
    # BEGIN SOLUTION
    basis = torch.linalg.svd(outputs, full_matrices=False).Vh[:rank]     # [r, d]: the outputs as they are
    return texts @ basis.T @ basis
    # END SOLUTION


# %% tags=["nbval-check-output"]
restrict_to_top_directions = check("restrict_to_top_directions", restrict_to_top_directions)


# %% [markdown]
# ### Exercise 2 · projection_variance · 🟢 easy · ~4 min
# outputs `[K, d]`, texts `[M, d]` → `[M]`: for each text, the variance over images of the outputs' dot products with it.
# Use torch's `.var` (unbiased, its default).
# <details><summary>Hint 1 · the idea</summary>
#
# For each text, dot every image's output with it and take the variance of those K numbers.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# One matrix product gives `[K, M]`; `.var` over the image axis (unbiased, the default) gives `[M]`.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def projection_variance(outputs, texts):
    # BEGIN SOLUTION
    return (outputs @ texts.T).var(dim=0)
    # END SOLUTION


# %% tags=["nbval-check-output"]
projection_variance = check("projection_variance", projection_variance)


# %% [markdown]
# ### Exercise 3 · remove_direction · 🟢 easy · ~4 min
# `x` `[..., d]` minus its component along `direction` `[d]` (not necessarily unit length).
# <details><summary>Hint 1 · the idea</summary>
#
# Subtract from x its projection onto the *unit* direction.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# Normalise the direction first; `x @ u` has shape `[...]`, so give it a trailing axis before multiplying by `u`.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def remove_direction(x, direction):
    # BEGIN SOLUTION
    u = direction / direction.norm()
    return x - (x @ u)[..., None] * u
    # END SOLUTION


# %% tags=["nbval-check-output"]
remove_direction = check("remove_direction", remove_direction)


# %% [markdown]
# ### Exercise 4 · textspan_greedy · 🔴 hard · ~12 min
# `textspan_greedy(outputs, texts, n_texts, rank)` → a tensor of the `n_texts` picked indices, in order. Normalise the
# texts to unit length first, restrict them (with the outputs as they are), centre the outputs, then loop. A text
# already picked must not be picked again.
# <details><summary>Hint 1 · the idea</summary>
#
# Normalise the texts, restrict them, centre the outputs; then repeat: score, pick the best unpicked text, remove
# its direction from the outputs and from every text.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# Use your three functions above. Work in float64 for stability; keep a Python list of picked indices and set their
# scores to −1 before each `argmax`.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def textspan_greedy(outputs, texts, n_texts, rank):
    # BEGIN SOLUTION
    pool = texts.double() / texts.double().norm(dim=-1, keepdim=True)
    pool = restrict_to_top_directions(pool, outputs.double(), rank)
    data = outputs.double() - outputs.double().mean(dim=0)
    picked = []
    for _ in range(n_texts):
        variance = projection_variance(data, pool)
        if picked:
            variance[picked] = -1.0
        j = int(variance.argmax())
        data, pool = remove_direction(data, pool[j]), remove_direction(pool, pool[j])
        picked.append(j)
    return torch.tensor(picked)
    # END SOLUTION


# %% tags=["nbval-check-output"]
textspan_greedy = check("textspan_greedy", textspan_greedy)

# %% tags=["varies"]
layer, head = L - 1, 0
mine = textspan_greedy(contrib.heads[:, layer, head].float(), text_emb, 5, default_rank(contrib.heads[:, layer, head]))
theirs = textspan(contrib.heads[:, layer, head], text_emb, texts, n_texts=5)
assert mine.tolist() == theirs.indices, (mine.tolist(), theirs.indices)
print(f"✅ your TextSpan picks the same 5 texts as course_utils.textspan for layer {layer}, head {head}:")
for t, e in zip(theirs.texts, theirs.explained):
    print(f"   {t:<40} variance explained so far {100 * e:5.1f}%")

# %% [markdown]
# ## 2 · Every late head, in words
#
# TextSpan for each head of the late layers. The table gives each head's texts, the property most of them are about
# (from the pool's labels), and that property's share.

# %% tags=["varies"]
spans = textspan_all(contrib, text_emb, texts, layers=LATE, n_texts=5)
shares = property_shares(spans, properties)
for (l, h), result in spans.items():
    prop, share = shares[(l, h)]
    print(f"L{l} H{h}  {prop:>10} {share:4.0%}  explained {100 * result.explained[-1]:4.1f}%  | " + " · ".join(result.texts))
with_role = [f"L{l}H{h}" for (l, h), (prop, share) in shares.items() if share >= 0.8]
by_property = {}
for (l, h), (prop, share) in shares.items():
    if share >= 0.8:
        by_property[prop] = by_property.get(prop, 0) + 1
print(f"\nheads with at least 80% of their texts about one property: {len(with_role)} of {len(shares)}; by property: {by_property}")


# %% [markdown]
# **Are the heads specialised?** The paper found, for OpenCLIP ViT-H-14 on ImageNet, late heads with clear roles: colours,
# counts, locations, textures, shapes. Read your table the same way, and be strict: a head earns a role only if most of
# its texts share it.
#
# In offline mode, ToyCLIP's last two layers have 8 heads each. (openai's ViTs use 64-wide heads, which would give
# ToyCLIP's width of 128 only 2; with 2 heads, every head mixed colour with shape and none had a role. The course
# retrained ToyCLIP with 8 heads of 16 dimensions: see `data/README.md`.) Now several heads earn a role: the last line
# of the table counts them by property. With the bundled model they are colour, shape and pattern heads, because
# ToyCLIP was trained to give 12 late heads those roles. Size, position and count have none, although captions name
# them: those words show up mixed into other heads' texts (notebook 08 measures why none of the three could have one).
# The mixed heads explain most of their variance all the same (the `explained` column): the span is right, it just
# isn't about one property. In real mode, ViT-B/32 has 12 heads per layer; expect some clean
# heads and many mixed ones. CIFAR-100's 32-pixel images are a narrow slice of what CLIP has seen, and ViT-B/32 is much
# smaller than the paper's ViT-H-14: expect fewer clean roles (an expectation; this notebook measures only your model).
#
# ### Checking the authors' default
#
# ⏩ *Skip if short on time: run these cells without stopping to discuss them; nothing later needs the discussion.*
#
# Step 1 needs a number $r$. The authors' code (`compute_complete_text_set.py`, its `--w_ov_rank`) uses $r = 80$ for
# every model. 80 is the width of one head of the paper's main model, OpenCLIP ViT-H-14 (1280 wide, 16 heads), and a
# head cannot write more directions than its width. ViT-B/32's and B/16's heads are 64 wide, L/14's 64 too, ToyCLIP's
# 16. With $r = 80$ on such a head, the directions past its width are rounding noise: they carry no variance, yet every
# text keeps its component along them, and later picks are decided among those leftovers.
#
# **Predict first:** if you jitter a head's outputs by one part in a million (far below anything that matters), how many
# of its picks would you expect to change? Then run the two cells: the spectrum of one head, and the jitter experiment
# on every head of the last layer, at the authors' $r = 80$ and at the default (the numerical rank, capped at 80).

# %% tags=["varies"]
one = contrib.heads[:, L - 1, 0]                                                  # [K, d]
S = torch.linalg.svd(one.double(), full_matrices=False).S
rank = default_rank(one)
plt.figure(figsize=(6, 3))
plt.semilogy((S / S[0]).numpy(), ".-")
plt.axvline(rank - 0.5, color="g", label=f"numerical rank {rank} (the default)")
if 80 < len(S):
    plt.axvline(79.5, color="r", ls="--", label="the authors' r = 80")
plt.xlabel("singular direction"); plt.ylabel("σ_i / σ_1"); plt.legend(); plt.title(f"layer {L - 1}, head 0 of {model.course_asset.name}")
plt.tight_layout(); plt.show()
print(f"head width {info.width // info.heads}; σ just past the rank: {(S[rank] / S[0]).item():.1e} of σ_1 (rounding noise)"
      if rank < len(S) else f"head width {info.width // info.heads}; full rank")

# %% tags=["varies"]
here = [contrib.heads[:, L - 1, h] for h in range(H)]                                      # this model's last layer
b16 = random_head_outputs("ViT-B/16", layers=(10, 11))                                     # 24 heads of a random B/16
b16_pool = F.normalize(torch.randn(600, 512, generator=torch.Generator().manual_seed(1)), dim=-1)
for what, heads, pool, n in [(f"{model.course_asset.name}, layer {L - 1}, 5 picks", here, text_emb, 5),
                             ("random ViT-B/16, layers 10-11, 10 picks", b16, b16_pool, 10)]:
    kept = jitter_stability(heads, pool, ranks=(80, None), n_texts=n)                     # 1e-6 relative jitter
    print(f"{what:<42} picks unchanged in {kept[80]:>2} of {len(heads)} heads at the authors' r = 80, "
          f"{kept[None]:>2} of {len(heads)} at the default rank")

# %% [markdown]
# With $r$ above the head's rank, the picks are decided partly by rounding noise, so they can change from one machine
# to the next. The random ViT-B/16 shows it: at $r = 80$ its heads' 10 picks change under a one-in-a-million jitter, at
# the numerical rank they don't. On ToyCLIP the noise may not tip 5 picks among the toy pool's phrases (its outputs are
# 64 wide, so $r = 80$ keeps all 64 directions, most of them noise): "it didn't change here" is not "it can't change".
# This is the one place where the course departs from the authors' code, on purpose; `textspan(..., rank=80)` still
# reproduces their picks exactly when you need to compare. (The B/16 heads are built without images: random values
# through the real model's $W^h_O$ and readout, which gives them a real head's rank; `random_head_outputs` says how.)
#
# ## 3 · Head browser
#
# ⏩ *Skip if short on time: run these cells without stopping to discuss them; nothing later needs the discussion.*
#
# Pick a layer and a head: its TextSpan texts, and the images at the two ends of its first direction (the images whose
# head output projects most and least on it).

# %% tags=["varies"]
def browse(layer=L - 1, head=0, n_texts=5):
    result = textspan(contrib.heads[:, layer, head], text_emb, texts, n_texts=n_texts)
    for t, e, j in zip(result.texts, result.explained, result.indices):
        print(f"  {t:<40} ({properties[j]}) explained {100 * e:4.1f}%")
    score = (contrib.heads[:, layer, head].float() - result.mean) @ result.directions[0]      # [K]
    order = score.argsort()
    picks = list(order[-6:].flip(0)) + list(order[:6])
    fig, axes = plt.subplots(2, 6, figsize=(10, 3.6))
    for ax, i in zip(axes.flat, picks):
        ax.imshow(analysis_images[int(i)]); ax.axis("off")
    axes[0, 0].set_title(f"most '{result.texts[0]}'", loc="left", fontsize=9)
    axes[1, 0].set_title("least", loc="left", fontsize=9)
    plt.tight_layout(); plt.show()

widgets.interact(browse, layer=widgets.IntSlider(value=L - 1, min=0, max=L - 1), head=widgets.IntSlider(value=0, min=0, max=H - 1),
                 n_texts=widgets.IntSlider(value=5, min=1, max=20));

# %% [markdown]
# ## 4 · How much do the words keep?
#
# Replace every late head by its TextSpan reconstruction (its mean plus the part of its output inside the span of its
# m texts) and measure zero-shot accuracy. If a handful of texts per head keeps most of the accuracy, the words are a
# faithful summary of what those heads contribute. We compare with mean-ablating the same heads (m = 0) and with the
# original model. The classes' images: CIFAR-100's test subset, or the toy world's single-object test set offline.

# %% [markdown]
# **Predict, then run.** Each late head will be replaced by the part of its output that its first m texts span. With
# m = 5 texts per head, what share of the original accuracy do you expect to keep? Write a number between 0 and 1
# in `my_share_guess`.

# %%
my_share_guess = None   # e.g. 0.8

# %% tags=["varies"]
classifier = zero_shot_classifier(model, test_set.classes, SINGLE_TEMPLATE).cpu()   # `labelled`: the first cells
late_heads = [(l, h) for l in LATE for h in range(H)]
original = ablation.mean_ablate(labelled, classifier)
ablated = ablation.mean_ablate(labelled, classifier, heads=late_heads)
sizes = [1, 2, 3, 5, 10, 20]
spans_max = textspan_all(labelled, text_emb, texts, layers=LATE, n_texts=max(sizes))   # greedy: m texts = the first m
kept = [accuracy(replace_with_spans(labelled, {k: r.first(m) for k, r in spans_max.items()}), classifier, labelled.labels)
        for m in sizes]
print(f"{model.course_asset.name} on {test_set.course_asset.name}, {len(ids)} images, heads of layers {LATE} replaced:")
print(f"  original model                 {100 * original:5.1f}%")
print(f"  mean-ablated (0 texts)         {100 * ablated:5.1f}%")
for m, acc in zip(sizes, kept):
    print(f"  TextSpan reconstruction, {m:>2} texts {100 * acc:5.1f}%")
plt.figure(figsize=(5.5, 3))
plt.plot([0] + sizes, [100 * ablated] + [100 * a for a in kept], "o-", label="late heads from TextSpan texts")
plt.axhline(100 * original, color="k", ls="--", label="original")
plt.xlabel("texts per head"); plt.ylabel("top-1 (%)"); plt.legend(); plt.tight_layout(); plt.show()

# %%
if my_share_guess is not None:
    assert 0 <= my_share_guess <= 1, "my_share_guess: a share between 0 and 1"
    print(f"you guessed {my_share_guess:.2f} of the accuracy kept with 5 texts; measured {kept[sizes.index(5)] / original:.2f}")

# %% [markdown]
# **Open task (~15 min): design a text pool for one head.** Pick a late head from the table of section 2 and write
# ten or more texts of your own in `my_pool`: what you think the head writes, and a few things it surely doesn't.
# Run TextSpan on that head with your pool. Does your pool explain more of the head's variance than the course's
# pool (`explained`, last value), with the same number of texts?

# %% tags=["varies"]
my_head = (LATE[-1], 0)                                                       # (layer, head): pick yours
my_pool = ["something red", "something blue", "a circle", "a square", "a star", "something small", "something large",
           "an object at the top left", "two objects", "a dog"]               # replace with yours
assert len(my_pool) >= 5 and all(isinstance(t, str) and t.strip() for t in my_pool), "my_pool: five or more texts"
my_emb = encode_texts(model, my_pool).cpu()
n = min(5, len(my_pool))
yours = textspan(contrib.heads[:, my_head[0], my_head[1]], my_emb, my_pool, n_texts=n)
course = textspan(contrib.heads[:, my_head[0], my_head[1]], text_emb, texts, n_texts=n)
print(f"L{my_head[0]}H{my_head[1]}, {n} texts · yours explain {yours.explained[-1]:.2f}: {yours.texts}")
print(f"{'':>8} the course pool's explain {course.explained[-1]:.2f}: {course.texts}")

# %% [markdown]
# ## Summary
#
# | step | what | checked against |
# |---|---|---|
# | restrict | texts onto the head's top-r singular directions | `restrict_to_top_directions` |
# | score | variance of projections over images | `projection_variance` |
# | pick and remove | greedy, orthogonalising outputs and texts | `course_utils.textspan` (same picks) |
# | interpret | the property most of a head's texts share | the pool's labels |
# | faithfulness | accuracy with heads rebuilt from m texts | the original model and mean-ablation |
#
# ## Quiz
# 1. Why remove a picked text's direction from the *texts* as well as from the outputs?
# 2. Why restrict the texts to the head's top-r directions at all?
# 3. A head's texts are "red", "a blue object", "something green", "purple", "the colour cyan". What would you expect if
#    you mean-ablated just that head, and which classes would suffer?
# 4. A head's reconstruction from 5 texts keeps the accuracy. Does that prove the head "means" those texts?
#
# <details><summary>Answers</summary>
#
# 1. Otherwise near-duplicates of the first pick ("red", "a red object") would score almost as high and be picked next,
#    explaining nothing new. Removing the direction from the texts makes every later pick orthogonal to the earlier ones.
# 2. A text direction can have a large component in directions the head never writes; its projections would then be
#    scored on noise. Restricting keeps only what the head can express. The paper restricts to r = 80, the width of
#    a ViT-H-14 head; for narrower heads the numerical rank is the right r (section "Checking the authors' default").
# 3. Colour information written directly by that head is lost; classes that differ only by colour (red circle vs blue
#    circle) would be confused most. Other heads may carry some colour too, so the drop can be partial.
# 4. No: it shows that the span of those texts captures what matters for *this* classifier's accuracy. The words are a
#    summary of a direction, chosen from one pool; another pool could give other words for the same span.
# </details>
#
# ## Further reading
#
# - Gandelsman, Efros and Steinhardt, "Interpreting CLIP's Image Representation via Text-Based Decomposition", ICLR
#   2024, [arXiv:2310.05916](https://arxiv.org/abs/2310.05916); code:
#   [yossigandelsman/clip_text_span](https://github.com/yossigandelsman/clip_text_span). This notebook follows the
#   TextSpan algorithm and the head roles the paper reports; the repository's `compute_complete_text_set.py` is the
#   code our picks are tested against.
