# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
# ---

# %% [markdown]
# # 03 · CLIP zero-shot classification on CIFAR-100
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/inside-clip/inside-clip/blob/main/notebooks/03_clip_zero_shot_cifar100.ipynb)
#
# **What you will be able to do after this notebook**
# - classify an image CLIP has never been trained to classify, with nothing but the class *names*;
# - turn the course notes' one-image cell into a fast evaluation of a whole test set (encode the text once, batch the images);
# - build a prompt ensemble from the 18 CIFAR-100 templates of the CLIP repository, and measure what it buys;
# - find where zero-shot fails: per-superclass accuracy and the most-confused class pairs;
# - read your number next to the published ones, and say which model produced it.
#
# **Expected time:** about 69 minutes at a learner's pace (37 of them on the exercises and open tasks; estimated as the instructor guide explains). On a laptop CPU the notebook runs in about a minute
# in offline mode, a few minutes in real mode.
#
# **Two modes.** On Colab or with internet, this notebook uses openai's ViT-B/32 and the real CIFAR-100 test set
# (10,000 images of 32 × 32 pixels). Offline (bad wifi, or `COURSE_OFFLINE=1`), it uses the course's **ToyCLIP** and
# the toy world's 100 colour × shape classes, with exactly the same code. The banner below says which one you have.
# Numbers in offline mode are about ToyCLIP, not CLIP.

# %% tags=["colab-setup"]
# Colab setup: on Colab this installs the course package (keeping Colab's torch); anywhere else it does nothing.
import sys
if "google.colab" in sys.modules:
    # !git clone -q --depth 1 -b main https://github.com/inside-clip/inside-clip /content/inside-clip
    # !pip install -q --no-deps -e /content/inside-clip openai-clip einops ftfy regex
    sys.path.insert(0, "/content/inside-clip")

# %% tags=["varies"]
# CLIP (or ToyCLIP offline), CIFAR-100 (or the toy world), and the zero-shot helpers this lesson builds up to.
import torch
import torch.nn.functional as F
import matplotlib.pyplot as plt
import ipywidgets as widgets

import course_utils          # first: it silences a deprecation warning that `import clip` would print
import clip
from course_utils.checks import check, assert_same
from course_utils.data import load_cifar100, superclasses
from course_utils.env import banner, get_device, is_real, rehearsal_sized, start_lesson
from course_utils.models import load_clip
from course_utils.zero_shot import (CIFAR100_TEMPLATES, PROMPT_TEMPLATE, SINGLE_TEMPLATE, classify, evaluate_zero_shot,
                                    example, most_confused, readable, score_embeddings, zero_shot_classifier)

start_lesson(seed=0)
device = get_device()

# %% [markdown]
# ## 1 · The course notes' zero-shot cells, one by one
#
# Load the model and the test set. `load_clip` is `clip.load` plus the course's cache and offline fallback: it
# returns the same `(model, preprocess)` pair. `preprocess` resizes to the model's input size (224 px for ViT-B/32),
# crops the centre, converts to RGB and normalises with CLIP's mean and standard deviation.

# %% tags=["varies"]
model, preprocess = load_clip(device=device)   # the course's model: ViT-B/32 unless COURSE_MODEL names another
test_set = load_cifar100(train=False)
MODE = banner(model, test_set)                  # what produced every number below, read from what was loaded
REAL_MODEL, REAL_DATA = is_real(model), is_real(test_set)
WHO = f"{model.course_asset.name} on {test_set.course_asset.name}"
print(f"{WHO} · {len(test_set)} test images · {len(test_set.classes)} classes, e.g. {test_set.classes[:4]}")
print("model input:", model.visual.input_resolution, "px")

# %% [markdown]
# The course notes pick index 15, which is a lion in CIFAR-100's test set. (In offline mode index 15 is a toy scene.)
# `example(dataset, i)` is `dataset[i]` with a helpful error for an index out of range: try `example(test_set, 10_000)`.

# %% tags=["varies"]
index = 15
image, label = example(test_set, index)
plt.figure(figsize=(3, 3)); plt.imshow(image); plt.axis("off")
plt.title(f"index {index}: {test_set.classes[label]} ({image.size[0]}×{image.size[1]} px)"); plt.show()

# %% [markdown]
# CIFAR-100's class names use underscores (`lawn_mower`, `sweet_pepper`). The text encoder was trained on captions
# written by people, so we make them readable first. The prompt turns a bare class name into something that looks like
# a caption. Each prompt becomes 77 token ids: start-of-text, the BPE tokens, end-of-text, then zeros.

# %% tags=["nbval-check-output"]
print(readable("lawn_mower"), "|", readable("sweet_pepper"))
prompts = [PROMPT_TEMPLATE.format(readable(c)) for c in test_set.classes]   # "a photo of a {}."
text_tokens = clip.tokenize(prompts)
print("tokens:", tuple(text_tokens.shape), text_tokens.dtype)
ids = clip.tokenize("a photo of a lawn mower")[0]
print("'a photo of a lawn mower' ->", ids[:9].tolist(), "... (then zeros)")

# %% [markdown]
# Now the notes' prediction: encode the one image and the 100 prompts, normalise both, and take a softmax over
# 100 × cosine similarity. The factor 100 is CLIP's learned temperature (`model.logit_scale.exp()` is 100 for openai's
# checkpoints).

# %% tags=["varies"]
image_input = preprocess(image).unsqueeze(0).to(device)            # [1, 3, 224, 224]
with torch.no_grad():
    image_features = model.encode_image(image_input).float()       # [1, 512]
    text_features = model.encode_text(text_tokens.to(device)).float()   # [100, 512]
image_features /= image_features.norm(dim=-1, keepdim=True)
text_features /= text_features.norm(dim=-1, keepdim=True)
similarity = (100.0 * image_features @ text_features.T).softmax(dim=-1)   # [1, 100]
values, indices = similarity[0].topk(5)

print(f"Top predictions ({WHO}):")
for value, i in zip(values, indices):
    print(f"{test_set.classes[i]:>16s} : {100 * value.item():.2f}%")

plt.figure(figsize=(5, 2.4))
plt.barh([readable(test_set.classes[i]) for i in indices.flip(0)], 100 * values.flip(0).cpu())
plt.xlabel("probability (%)"); plt.title(f"top-5 for index {index}"); plt.tight_layout(); plt.show()

# %% [markdown]
# In real mode you should see `lion` at about 96%, as in the course notes.
#
# > **Common pitfall: "vision models are stochastic, so the output changes from run to run."** The course notes say this,
# > but inference is deterministic: the same weights and the same image give the same numbers. (Training is
# > stochastic; so is sampling text from a language model.) Don't take it on faith; run it twice:

# %% tags=["nbval-check-output"]
with torch.inference_mode():
    again = (100.0 * F.normalize(model.encode_image(image_input).float(), dim=-1) @ text_features.T).softmax(dim=-1)
assert_same("the same image twice gives the same probabilities", again, similarity)


# %% [markdown]
# ### Exercise 1 · zero_shot_probabilities · 🟢 easy · ~5 min
# Write the notes' prediction as a function for a *batch*: image embeddings `[B, d]` and class embeddings `[C, d]`
# (not necessarily normalised) → probabilities `[B, C]`, the softmax over classes of 100 × cosine similarity.
# <details><summary>Hint 1 · the idea</summary>
#
# The notes' prediction line, for a whole batch: cosines, scaled by 100, softmax over the classes.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# Normalise both inputs' rows (`F.normalize`), one matrix product gives `[B, C]`, then `softmax` over the last axis.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def zero_shot_probabilities(image_emb, class_emb):
    # BEGIN SOLUTION
    cosine = F.normalize(image_emb, dim=-1) @ F.normalize(class_emb, dim=-1).T   # [B, C]
    return (100.0 * cosine).softmax(dim=-1)
    # END SOLUTION


# %% tags=["nbval-check-output"]
zero_shot_probabilities = check("zero_shot_probabilities", zero_shot_probabilities)

# %% [markdown]
# ## 2 · The whole test set
#
# Running the notes' cell once per image re-encodes the 100 prompts for every image: 100 text forward passes to
# classify one picture. The text side doesn't depend on the image, so we encode it **once** into a classifier
# `[C, d]` (one unit vector per class). Then images go through in batches, with a `DataLoader`, under
# `torch.inference_mode()` (no autograd bookkeeping) and with a progress bar. `benchmarks/zero_shot_throughput.py`
# measures the difference on ViT-B/32: the batched evaluation is about 50 times faster than the one-image-at-a-time loop.
#
# **`FAST`** is on by default on CPU: it evaluates a fixed subset of 1,000 images (the same for every learner), so
# you aren't stuck waiting. On a GPU, real mode uses all 10,000. Set `FAST = False` to override.

# %% tags=["varies"]
FAST = device.type == "cpu"
subset = torch.randperm(len(test_set), generator=torch.Generator().manual_seed(0))[:rehearsal_sized(1000, 100)].tolist() if FAST else None
workers = 2 if device.type == "cuda" else 0

single = zero_shot_classifier(model, test_set.classes, SINGLE_TEMPLATE)      # [100, 512]: one prompt per class
print("classifier:", tuple(single.shape))
result = evaluate_zero_shot(model, test_set, single, preprocess, batch_size=128, indices=subset, num_workers=workers)
print(f"{WHO}, single prompt 'a photo of a {{}}.': top-1 {100 * result['top1']:.1f}%, "
      f"top-5 {100 * result['top5']:.1f}% on {result['n']} images")


# %% [markdown]
# ### Exercise 2 · ensemble_embeddings · 🟡 medium · ~8 min
# A single prompt is a guess at how captions on the web are phrased. The CLIP paper averages several. Given the text
# embeddings of `T` templates for each of `C` classes, `[C, T, d]`, return one unit vector per class, `[C, d]`:
# normalise each prompt embedding, average over templates, normalise again. (Averaging the *embeddings* costs nothing
# at test time: the classifier stays `[C, d]`.)
# <details><summary>Hint 1 · the idea</summary>
#
# Each prompt should get an equal vote, whatever the length of its embedding; and the class vector must be a unit
# vector again at the end.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# Normalise over `d` (the last axis), average over the template axis (`dim=1` of `[C, T, d]`), normalise again.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def ensemble_embeddings(text_emb):
    # BEGIN SOLUTION
    per_prompt = F.normalize(text_emb, dim=-1)          # [C, T, d], each prompt a unit vector
    return F.normalize(per_prompt.mean(dim=1), dim=-1)  # [C, d]
    # END SOLUTION


# %% tags=["nbval-check-output"]
ensemble_embeddings = check("ensemble_embeddings", ensemble_embeddings)

# %% [markdown]
# The 18 CIFAR-100 templates are the ones listed in the CLIP repository's `data/prompts.md`
# ("a blurry photo of a {}.", "a black and white photo of the {}.", ...). `zero_shot_classifier` tokenises
# C × T prompts, encodes them and calls the same ensemble as your function. Let's confirm that, and then evaluate.
# Only the text side changes, so the images need not be encoded again: `evaluate_zero_shot` kept their embeddings,
# and `score_embeddings` compares them with the new class embeddings.

# %% tags=["varies"]
print(len(CIFAR100_TEMPLATES), "templates, e.g.", CIFAR100_TEMPLATES[:3])
ensemble = zero_shot_classifier(model, test_set.classes, CIFAR100_TEMPLATES)     # [100, 512]
with torch.inference_mode():
    tokens = clip.tokenize([t.format(readable(c)) for c in test_set.classes[:3] for t in CIFAR100_TEMPLATES])
    per_prompt = model.encode_text(tokens.to(device)).float().view(3, len(CIFAR100_TEMPLATES), -1)   # [3, 18, 512]
assert_same("your ensemble vs zero_shot_classifier (first 3 classes)", ensemble_embeddings(per_prompt), ensemble[:3], atol=1e-4)

# %% [markdown]
# **Predict, then run.** The next cell compares one prompt with the 18-template ensemble on the same images. Before
# you run it: will the ensemble help, and by how many points? Write your guess (a signed number of points) in
# `my_gain_guess`. Then ask yourself why the answer could differ between CLIP on photos and ToyCLIP on drawings.

# %%
my_gain_guess = None   # e.g. +2.0

# %% tags=["varies"]
result_ens = score_embeddings(result["embeddings"], result["labels"], ensemble)   # the same images, encoded once

rows = [("CLIP paper, ViT-B/32, 18-template ensemble (10,000 images)", "65.1"),
        ("openai/CLIP issue 153, single prompt 'a photo of a {}.'", "about 62"),
        ("openai/CLIP issue 204, 7-template ensemble", "64.58"),
        (f"YOU, {WHO}, single prompt ({result['n']} images)", f"{100 * result['top1']:.1f}"),
        (f"YOU, {WHO}, 18-template ensemble ({result_ens['n']} images)", f"{100 * result_ens['top1']:.1f}")]
print(f"{'zero-shot top-1 on CIFAR-100':<66} {'%':>9}")
for what, value in rows:
    print(f"{what:<66} {value:>9}")
if not (REAL_MODEL and REAL_DATA):
    print(f"\nYour numbers are {WHO}, not CLIP ViT-B/32 on CIFAR-100: compare the two YOU rows with each other,"
          "\nnot with the published ones. (ToyCLIP was trained on one prompt, so an ensemble of photo templates may not help it.)")
elif FAST:
    print("\nFAST = True: 1,000 of the 10,000 images, so expect a point or two of sampling noise around the published figures.")


# %%
if my_gain_guess is not None:
    print(f"you guessed {my_gain_guess:+.1f} points; measured {100 * (result_ens['top1'] - result['top1']):+.1f}")

# %% [markdown]
# **Open task (~10 min): your own templates.** Write three to five templates of your own in `my_templates` (each with
# one `{}` for the class name), for example about drawings, toys or close-ups, and score them on the same images.
# Which of your templates helps, which hurts, and why might a template that names the *wrong kind of picture* still
# help a little?

# %% tags=["varies"]
my_templates = ["a photo of a {}.", "a drawing of a {}.", "a close-up photo of the {}."]   # replace with yours
assert all(t.count("{}") == 1 for t in my_templates), "my_templates: each template needs exactly one {}"
mine = zero_shot_classifier(model, test_set.classes, my_templates)
print(f"your {len(my_templates)} templates: top-1 "
      f"{100 * score_embeddings(result['embeddings'], result['labels'], mine)['top1']:.1f}% ({WHO})")

# %% [markdown]
# ## 3 · Where does it fail?
#
# A single accuracy hides a lot. CIFAR-100 groups its 100 classes into 20 **superclasses** of 5 ("large carnivores":
# bear, leopard, lion, tiger, wolf). The toy world has 20 too (warm or cool colour × shape).
#
# ### Exercise 3 · per_group_accuracy · 🟡 medium · ~8 min
# Given predictions and labels `[N]` (class indices) and `group_of_class` `[C]` (the superclass of each class), return
# the top-1 accuracy within each group, `[G]`. An image belongs to the group of its **true** class.
# <details><summary>Hint 1 · the idea</summary>
#
# An image belongs to the group of its *true* class. Per group: correct images divided by all images.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# Indexing `group_of_class` with the labels gives each image's group `[N]`. A loop over groups with a boolean mask
# works, and so does `torch.zeros(G).index_add_(0, groups, values)` for the counts.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def per_group_accuracy(predictions, labels, group_of_class):
    # BEGIN SOLUTION
    groups = group_of_class[labels]                         # [N]
    n_groups = int(group_of_class.max()) + 1
    correct = (predictions == labels).float()
    return torch.stack([correct[groups == g].mean() for g in range(n_groups)])   # [G]
    # END SOLUTION


# %% tags=["nbval-check-output"]
per_group_accuracy = check("per_group_accuracy", per_group_accuracy)

# %% tags=["varies"]
names, group_of_class = superclasses(test_set)
acc = per_group_accuracy(result_ens["predictions"], result_ens["labels"], group_of_class)
order = acc.argsort()
plt.figure(figsize=(6, 5))
plt.barh([names[i] for i in order], 100 * acc[order])
plt.axvline(100 * result_ens["top1"], color="k", ls="--", label="overall")
plt.xlabel("top-1 accuracy (%)"); plt.title(f"per-superclass accuracy, {WHO}"); plt.legend(); plt.tight_layout(); plt.show()


# %% [markdown]
# ### Exercise 4 · confusion_matrix · 🟢 easy · ~6 min
# Return the `[C, C]` matrix of counts whose entry `(t, p)` is the number of images of true class `t` predicted as
# class `p`.
# <details><summary>Hint 1 · the idea</summary>
#
# Each (true, predicted) pair is one cell of a C × C table; you need to count how often each cell occurs.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# Turn a pair into one number (row-major: true class times C plus predicted class); `torch.bincount(..., minlength=C
# * C)` counts all of them at once; then reshape to `[C, C]`.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def confusion_matrix(predictions, labels, n_classes):
    # BEGIN SOLUTION
    counts = torch.bincount(labels * n_classes + predictions, minlength=n_classes * n_classes)
    return counts.view(n_classes, n_classes)
    # END SOLUTION


# %% tags=["nbval-check-output"]
confusion_matrix = check("confusion_matrix", confusion_matrix)

# %% [markdown]
# The largest off-diagonal entries are the pairs CLIP mixes up most. For each, one image that was misclassified:

# %% tags=["varies"]
conf = confusion_matrix(result_ens["predictions"], result_ens["labels"], len(test_set.classes))
pairs = most_confused(conf, k=8)
evaluated = subset if subset is not None else list(range(len(test_set)))
if not pairs:  # a model can be perfect on a subset: then there is no confusion to show
    print(f"no confusions: all {len(evaluated)} evaluated images were classified correctly")
else:
    fig, axes = plt.subplots(1, len(pairs), figsize=(2 * len(pairs), 2.6), squeeze=False)
    for ax, (true, pred, count) in zip(axes[0], pairs):
        print(f"{test_set.classes[true]:>16s} -> {test_set.classes[pred]:<16s} {count} times")
        where = ((result_ens["labels"] == true) & (result_ens["predictions"] == pred)).nonzero()[0, 0]
        ax.imshow(test_set[evaluated[where]][0]); ax.axis("off")
        ax.set_title(f"{readable(test_set.classes[true])}\n→ {readable(test_set.classes[pred])}", fontsize=8)
    plt.tight_layout(); plt.show()


# %% [markdown]
# In real mode the confusions are mostly *reasonable*: neighbours within a superclass (maple vs oak, boy vs girl, seal
# vs otter) and look-alikes across superclasses. At 32 × 32 pixels, upsampled to 224, many of them are hard for people
# too. In offline mode, ToyCLIP makes almost no mistakes on the toy test set (the cell may find none at all).
#
# ## 4 · Try it yourself
#
# ⏩ *Skip if short on time: run these cells without stopping to discuss them; nothing later needs the discussion.*
#
# Pick a test image, or type your own candidate labels (comma-separated). Zero-shot means *any* labels: try
# `lion, tiger, a drawing of a cat, a photo of a big cat`. An empty label box falls back to the dataset's classes.

# %% tags=["varies"]
def explore(index=15, labels=""):
    image, label = example(test_set, index)
    names = [s.strip() for s in labels.split(",") if s.strip()] or list(test_set.classes)
    classifier = zero_shot_classifier(model, names, SINGLE_TEMPLATE if not labels.strip() else ("{}",))
    top = classify(model, preprocess, image, classifier, names, k=5)
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 2.6), gridspec_kw={"width_ratios": [1, 2]})
    a.imshow(image); a.axis("off"); a.set_title(f"index {index}: {test_set.classes[label]}")
    b.barh([n for n, _ in top][::-1], [100 * p for _, p in top][::-1]); b.set_xlabel("probability (%)")
    plt.tight_layout(); plt.show()

widgets.interact(explore, index=widgets.BoundedIntText(value=15, min=0, max=len(test_set) - 1),
                 labels=widgets.Text(value="", placeholder="lion, tiger, a drawing of a cat", continuous_update=False));

# %% [markdown]
# The function also works without the widget, and on images that aren't RGB (grayscale and RGBA images are converted,
# transparency onto white):

# %% tags=["varies"]
gray = example(test_set, 15)[0].convert("L")
for name, p in classify(model, preprocess, gray, single, test_set.classes, k=3):
    print(f"{gray.mode} image: {name:>16s} {100 * p:6.2f}%")

# %% [markdown]
# ## Summary
#
# | step | what it does | the idea |
# |---|---|---|
# | `readable` + prompt | `lawn_mower` → "a photo of a lawn mower" | the text encoder reads captions, not labels |
# | `zero_shot_classifier` | C classes × T templates → `[C, d]` unit vectors | encode the text **once** |
# | `evaluate_zero_shot` | batched images → top-1/top-5 | a DataLoader, `inference_mode`, a progress bar |
# | ensemble | mean of normalised prompt embeddings | a few points for free in real mode (65.1% in the paper) |
# | per-superclass, confusions | where the errors live | look at failures before trusting an average |
#
# ## Quiz
# 1. Why does the notes' one-image cell, run in a loop over 10,000 images, waste almost all of its time?
# 2. The ensemble has 18 templates. How much more does it cost *per test image* than a single prompt?
# 3. Why normalise each prompt embedding before averaging?
# 4. An offline-mode learner gets about 99% top-1. Did they beat the CLIP paper?
#
# <details><summary>Answers</summary>
#
# 1. It re-encodes the same 100 prompts for every image: 100 text forward passes per image instead of 100 in total.
# 2. Nothing: the templates are averaged into one `[C, d]` classifier before any image is seen. Only building the
#    classifier costs 18 times more, once.
# 3. Embeddings have different lengths; without normalising, the longest prompt dominates the mean direction.
# 4. No. The number is about ToyCLIP on 100 drawn colour × shape classes, an easy task for a model trained on it. It
#    says the code works; it says nothing about CLIP on CIFAR-100.
# </details>
#
# ## Further reading
#
# - Radford et al., "Learning Transferable Visual Models From Natural Language Supervision", ICML 2021,
#   [arXiv:2103.00020](https://arxiv.org/abs/2103.00020); code and weights:
#   [openai/CLIP](https://github.com/openai/CLIP). This notebook follows section 3.1 (zero-shot transfer), in
#   particular 3.1.4 on prompt engineering and ensembling; the repository's
#   `notebooks/Prompt_Engineering_for_ImageNet.ipynb` has the authors' templates.
# - Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009 ([technical
#   report](https://www.cs.toronto.edu/~kriz/learning-features-2009-TR.pdf)): CIFAR-100 and its 20 superclasses.
