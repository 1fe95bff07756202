# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
# ---

# %% [markdown]
# # 02 · CLIP's contrastive objective, from scratch
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/inside-clip/inside-clip/blob/main/notebooks/02_clip_contrastive_from_scratch.ipynb)
#
# **What you will be able to do after this notebook**
# - say why an image encoder and a text encoder need *projections into one shared space*;
# - write CLIP's symmetric contrastive loss (InfoNCE) with a learnable temperature, and explain why it needs the
#   other pairs in the batch;
# - train a tiny CLIP for about 15 seconds on CPU and watch zero-shot classification appear;
# - recognise the course's bundled **ToyCLIP** as the very same architecture as openai's ViT-B/32, only smaller.
#
# **Expected time:** about 79 minutes at a learner's pace (31 of them on the exercises and open tasks; estimated as the instructor guide explains). The notebook runs in about half a minute on a laptop CPU.
#
# This notebook is the same in real and offline mode: everything here is trained on the course's toy world, a set of
# drawn scenes of coloured shapes that the course generates itself (no download).

# %% tags=["colab-setup"]
# Colab setup: on Colab this installs the course package (keeping Colab's torch); anywhere else it does nothing.
import sys
if "google.colab" in sys.modules:
    # !git clone -q --depth 1 -b main https://github.com/inside-clip/inside-clip /content/inside-clip
    # !pip install -q --no-deps -e /content/inside-clip openai-clip einops ftfy regex
    sys.path.insert(0, "/content/inside-clip")

# %% tags=["varies"]
# The toy world, a tiny CLIP we train here, and the course's ToyCLIP to compare it with.
import math, re, time
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
import matplotlib.pyplot as plt
import ipywidgets as widgets
from einops import rearrange

from course_utils import toyworld as tw
from course_utils.checks import check
from course_utils.env import seed_everything, start_lesson
from course_utils.models import load_clip, model_info, random_clip
from course_utils.data import to_input
from course_utils.plots import show_matrix

start_lesson(seed=0, uses_assets=False)  # seeds, and prints the banner

# %% [markdown]
# ## 1 · Why the sketch in the course notes can't work
#
# The course notes sketch CLIP as "a ResNet-50 for images, a transformer layer for text, and a cosine similarity between
# the two". Let's run it as written, with random weights (`weights=None`, so nothing is downloaded). We want *one* number:
# how well this image matches this text.

# %% tags=["nbval-check-output"]
from torchvision.models import resnet50

image_encoder = nn.Sequential(*list(resnet50(weights=None).children())[:-1]).eval()   # drop the classifier
text_encoder = nn.TransformerEncoderLayer(d_model=512, nhead=8).eval()
with torch.no_grad():
    image_features = image_encoder(torch.randn(1, 3, 224, 224))
    text_features = text_encoder(torch.randn(1, 10, 512))      # "10 words of 512 numbers"
print("image features:", tuple(image_features.shape))
print("text features: ", tuple(text_features.shape))
similarity = nn.CosineSimilarity(dim=1)(image_features, text_features)
print("'similarity' shape:", tuple(similarity.shape), f"= {similarity.numel()} numbers for ONE (image, text) pair")
assert similarity.numel() != 1

# %% [markdown]
# It doesn't even fail. Broadcasting lines up the shapes from the right, `(1, 2048, 1, 1)` against `(1, 10, 512)`, so
# PyTorch quietly compares 2048 image channels with 10 × 512 text numbers and returns a tensor of 5,120 "similarities".
# Silent shape bugs like this are why every step in this course is checked. Three things are missing, and each one is
# a piece of real CLIP:
#
# 1. **No shared space.** A 2048-d image feature and a 512-d word sequence can't be compared at all. CLIP ends each
#    encoder with a **projection** (a learned matrix) into one space of the same width (512 for ViT-B/32), pools
#    the text to *one* vector (the end-of-text token), and L2-normalises both, so the dot product is a cosine.
# 2. **No text pipeline.** Random 512-d vectors are not text: CLIP tokenises the caption (BPE), embeds the tokens and
#    adds positions, as in notebook 01.
# 3. **No contrast.** Even with matching shapes, "make the cosine of each (image, caption) pair large" has a trivial
#    solution: map *everything* to the same vector. Every pair then scores 1 and the model knows nothing. CLIP instead
#    asks each image to pick its own caption **among all captions in the batch** (and each caption its image).
#
# Claim 3 is easy to check. We'll measure it in section 4, after building the pieces.
#
# ## 2 · The toy world
#
# Our data: drawn scenes of 1–3 coloured, patterned shapes, each with a caption. There are 10 colours × 10 shapes = **100
# classes** (mirroring CIFAR-100), and the world knows where every object is. Notebook 07 uses that to score heatmaps.

# %% tags=["nbval-check-output"]
fig, axes = plt.subplots(2, 6, figsize=(15, 5.6))
for ax, seed in zip(axes.flat, range(12)):
    scene = tw.random_scene(seed)
    ax.imshow(scene.image); ax.set_axis_off()
    ax.set_title("\n".join(re.findall(r".{1,28}(?:\s|$)", scene.caption)), fontsize=7)
plt.tight_layout(); plt.show()
print(len(tw.CLASSES), "classes, e.g.", tw.CLASSES[:3], "...;", len(tw.SUPERCLASSES), "superclasses, e.g.", tw.SUPERCLASSES[:2])

# %% [markdown]
# We train on single-object images (5,000 of them) so that 15 seconds of CPU is enough. Each image's caption varies
# ("a photo of a small red star", "a blue ring on a black background", ...). Images are normalised with CLIP's mean
# and standard deviation. The text is split into words, and each word gets an id (a word-level version of notebook
# 01's vocabulary; real CLIP uses a 49,408-token BPE vocabulary).

# %% tags=["nbval-check-output"]
train_set, test_set = tw.ToyShapes(train=True, n=5000), tw.ToyShapes(train=False, n=500)
def as_uint8(image):                                     # PIL -> [3, 64, 64] uint8
    return torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy())

train_scenes = [train_set.scene(i) for i in range(len(train_set))]
X_train = to_input(torch.stack([as_uint8(s.image) for s in train_scenes]))      # [5000, 3, 64, 64]
captions = [s.caption for s in train_scenes]
test_items = [test_set[i] for i in range(len(test_set))]                           # (PIL image, label) pairs
X_test = to_input(torch.stack([as_uint8(image) for image, _ in test_items]))
y_test = torch.tensor([label for _, label in test_items])

def words(text):
    return re.findall(r"[a-z]+", text.lower())

vocab = ["<pad>"] + sorted({w for c in captions for w in words(c)} | set(tw.COLORS) | set(tw.SHAPES) | {"a", "photo", "of"})
word_id = {w: i for i, w in enumerate(vocab)}

def tokenize(texts, max_len=16):
    ids = torch.zeros(len(texts), max_len, dtype=torch.long)       # 0 = <pad>
    for i, text in enumerate(texts):
        row = [word_id[w] for w in words(text) if w in word_id][:max_len]
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return ids

T_train = tokenize(captions)
print(f"{len(vocab)} words; {captions[0]!r} -> {T_train[0].tolist()}")


# %% [markdown]
# ## 3 · Two encoders, one space
#
# Both encoders are tiny transformers (one block each, as in notebook 01) that end with a **projection into the same
# 32-d space**. The image encoder is a miniature ViT: each 16×16-pixel patch becomes a token, just as in CLIP's ViT
# (notebook 04; ViT-B/16 cuts its 224-pixel images into patches of the same size). Our 64-pixel images give a 4×4
# grid of 16 tokens: few enough to train the pair in seconds on a CPU.


# %%
from course_utils import diagrams   # the whole of CLIP on one page (drawn by the course with matplotlib)
_ = diagrams.dual_encoder()

# %% tags=["nbval-check-output"]
class TinyImageEncoder(nn.Module):
    """A one-block ViT: 16x16-pixel patches -> tokens -> attention -> mean -> projection into the shared space."""
    def __init__(self, width=64, embed_dim=32, patch=16, size=64):
        super().__init__()
        self.patchify = nn.Conv2d(3, width, kernel_size=patch, stride=patch)      # one token per patch
        self.pos = nn.Parameter(torch.randn((size // patch) ** 2, width) * 0.02)
        self.block = nn.TransformerEncoderLayer(width, 2, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.proj = nn.Linear(width, embed_dim, bias=False)                       # into the shared space

    def forward(self, images):                                                    # [B, 3, 64, 64]
        x = rearrange(self.patchify(images), "b d gh gw -> b (gh gw) d") + self.pos   # [B, 16, width]
        return self.proj(self.block(x).mean(dim=1))                               # [B, embed_dim]


class TinyTextEncoder(nn.Module):
    """Word embeddings -> one attention block -> mean over real words -> projection into the shared space."""
    def __init__(self, vocab_size, width=64, embed_dim=32, max_len=16):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width, padding_idx=0)
        self.pos = nn.Parameter(torch.randn(max_len, width) * 0.02)
        self.block = nn.TransformerEncoderLayer(width, 2, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.proj = nn.Linear(width, embed_dim, bias=False)

    def forward(self, ids):                                                       # [B, T] word ids, 0 = padding
        pad = ids == 0
        x = self.block(self.embed(ids) + self.pos[: ids.shape[1]], src_key_padding_mask=pad)   # [B, T, width]
        x = x.masked_fill(pad[..., None], 0).sum(dim=1) / (~pad).sum(dim=1, keepdim=True)   # mean of real words
        return self.proj(x)                                                       # [B, embed_dim]

seed_everything(0)
image_encoder, text_encoder = TinyImageEncoder(), TinyTextEncoder(len(vocab))
with torch.no_grad():
    print("image embedding:", tuple(image_encoder(X_train[:4]).shape), " text embedding:", tuple(text_encoder(T_train[:4]).shape))


# %% [markdown]
# ### The similarity matrix
#
# For a batch of $B$ pairs, L2-normalise every embedding and take all dot products: $S = \hat I \hat T^\top$, a
# $[B, B]$ matrix of cosines whose diagonal holds the true pairs. CLIP multiplies it by a learned **inverse
# temperature** $e^{t}$ (initialised so that the temperature is 0.07), which sharpens the softmax that follows:
#
# $$\text{logits} = e^{t}\; \hat I \hat T^\top$$
#
# ### Exercise 1 · similarity logits · 🟢 easy · ~5 min
# Write `similarity_logits(image_emb, text_emb, logit_scale)` returning `[B_img, B_txt]`. The checker also tries 3
# images against 6 texts.
#
# <details><summary>Hint 1 · the idea</summary>
#
# Cosine similarity of every image with every text, times the learned scale.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# `F.normalize(..., dim=-1)` makes rows unit length; one matrix product with a transpose gives `[B_img, B_txt]`.
# `logit_scale` is stored as a logarithm.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def similarity_logits(image_emb, text_emb, logit_scale):
    # BEGIN SOLUTION
    image_emb = F.normalize(image_emb, dim=-1)        # [B_img, d], unit rows
    text_emb = F.normalize(text_emb, dim=-1)          # [B_txt, d]
    return logit_scale.exp() * image_emb @ text_emb.T # [B_img, B_txt]
    # END SOLUTION


# %% tags=["nbval-check-output"]
similarity_logits = check("similarity_logits", similarity_logits)


# %% [markdown]
# ### The symmetric contrastive loss (InfoNCE)
#
# Row $i$ of the logits is a classification problem: *which of the $B$ captions belongs to image $i$?* The answer is
# $i$. Column $j$ is the reverse problem: *which image belongs to caption $j$?* CLIP averages both cross-entropies:
#
# $$\mathcal L = \tfrac12\Big[\operatorname{CE}(\text{logits},\, [0..B{-}1]) + \operatorname{CE}(\text{logits}^\top,\, [0..B{-}1])\Big]$$
#
# The other $B-1$ captions in the batch are the *negatives*. Pushing them away is exactly what prevents the collapse
# from section 1.
#
# ### Exercise 2 · CLIP loss · 🟡 medium · ~8 min
# Write `clip_loss(image_emb, text_emb, logit_scale)` using your `similarity_logits`.
#
# <details><summary>Hint 1 · the idea</summary>
#
# Two classification problems on the same matrix: rows (image → which caption?) and columns (caption → which
# image?). The right answer for row i and for column i is i.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# `F.cross_entropy` takes the logits and, per row, the index of the right answer: for row i that is i
# (`torch.arange`). The columns' problem is the rows' problem of the transpose. Average the two losses.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def clip_loss(image_emb, text_emb, logit_scale):
    # BEGIN SOLUTION
    logits = similarity_logits(image_emb, text_emb, logit_scale)      # [B, B]
    targets = torch.arange(len(logits))                               # pair i sits on the diagonal
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    # END SOLUTION


# %% tags=["nbval-check-output"]
clip_loss = check("clip_loss", clip_loss)


# %% [markdown]
# ### Zero-shot classification
#
# Once trained, classifying needs no new training: write one prompt per class ("a photo of a red star"), encode the
# prompts, and pick the class whose text embedding is most similar to the image embedding.
#
# ### Exercise 3 · zero-shot prediction · 🟢 easy · ~4 min
# Write `zero_shot_predict(image_emb, class_emb)` returning the index of the most similar class for each image.
#
# <details><summary>Hint 1 · the idea</summary>
#
# The predicted class is the one whose text embedding points most nearly the same way as the image embedding.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# Cosine, not raw dot product: normalise both sides first (the checker has a class vector that is long but points
# the wrong way). Then `argmax` over the classes.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def zero_shot_predict(image_emb, class_emb):
    # BEGIN SOLUTION
    return (F.normalize(image_emb, dim=-1) @ F.normalize(class_emb, dim=-1).T).argmax(dim=-1)
    # END SOLUTION


# %% tags=["nbval-check-output"]
zero_shot_predict = check("zero_shot_predict", zero_shot_predict)


# %% [markdown]
# ### Exercise 4 · top-k accuracy · 🟢 easy · ~4 min
# Write `topk_accuracy(logits, labels, k)`: the share of rows whose true label is among the `k` highest logits.
#
# <details><summary>Hint 1 · the idea</summary>
#
# A row counts as correct if its label is anywhere among its k largest logits.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# `topk` along the last axis returns values and `.indices`, `[B, k]`; compare it with the labels made into a column `[B, 1]`, reduce with `.any`
# over the last axis, and average.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def topk_accuracy(logits, labels, k):
    # BEGIN SOLUTION
    top = logits.topk(k, dim=-1).indices                  # [B, k]
    return (top == labels[:, None]).any(dim=-1).float().mean()
    # END SOLUTION


# %% tags=["nbval-check-output"]
topk_accuracy = check("topk_accuracy", topk_accuracy)

# %% [markdown]
# **Predict, then run.** Before any training, both encoders give random directions. For a batch of 64 pairs, what
# loss do you expect? Think of each row as a guess among 64 captions, made with no information at all. Write your
# number in `my_loss_guess`, then run.

# %%
my_loss_guess = None   # e.g. 2.0

# %% tags=["nbval-check-output"]
g = torch.Generator().manual_seed(0)
B = 64
untrained = clip_loss(torch.randn(B, 32, generator=g), torch.randn(B, 32, generator=g), torch.tensor(0.0))
print(f"loss with random embeddings: {float(untrained):.2f}; ln(B) = {math.log(B):.2f}")
if my_loss_guess is not None:
    print(f"you guessed {my_loss_guess}: off by {abs(my_loss_guess - float(untrained)):.2f}")

# %% [markdown]
# A uniform guess among B answers costs $\ln B$ nats: the untrained loss sits there. Training has to push it down.
# That is also why bigger batches make the task harder, and the loss not comparable across batch sizes.

# %% [markdown]
# ## 4 · Train: first without negatives, then with them
#
# One helper trains an image and text encoder pair with a given objective, and measures zero-shot accuracy on 500 test
# images every 50 steps (100 prompts "a photo of a {colour} {shape}", one per class).
#
# The learning rate follows the schedule CLIP was trained with (and most transformers are): a short linear **warmup**
# from 0 (the first 10% of the steps here; CLIP: 2,000 steps), then a **cosine decay** to 0. The warmup keeps the first,
# still random updates small; the decay lets the last steps settle instead of bouncing around. On this budget it
# matters: in our runs, the same 500 steps at a constant learning rate of 1e-3 ended at 32% top-1 instead of 55%.

# %% tags=["varies"]
prompts = tokenize([f"a photo of a {c.replace('_', ' ')}" for c in tw.CLASSES])     # [100, 16]

def zero_shot_accuracy(img_enc, txt_enc):
    # returns (top-1, top-5) on the 500 test images
    with torch.no_grad():
        logits = F.normalize(img_enc(X_test), dim=-1) @ F.normalize(txt_enc(prompts), dim=-1).T   # [500, 100]
    return topk_accuracy(logits, y_test, 1).item(), topk_accuracy(logits, y_test, 5).item()

def warmup_cosine(steps, warmup=0.1):
    # learning-rate factor for each step: linear warmup over the first 10% of the steps, then cosine decay to 0
    warmup_steps = max(1, int(warmup * steps))
    def factor(step):                                                    # step = 0, 1, ..., steps - 1
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps)))
    return factor

def train_pair(objective, steps, batch_size=128, lr=1e-3, eval_every=50, seed=0):
    seed_everything(seed)
    img_enc, txt_enc = TinyImageEncoder(), TinyTextEncoder(len(vocab))
    logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))        # learnable temperature, starts at 0.07
    opt = torch.optim.AdamW([*img_enc.parameters(), *txt_enc.parameters(), logit_scale], lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(steps))   # lr = lr * factor(step)
    gen = torch.Generator().manual_seed(seed)
    history = dict(step=[], loss=[], top1=[], top5=[])
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(X_train), (batch_size,), generator=gen)
        loss = objective(img_enc(X_train[idx]), txt_enc(T_train[idx]), logit_scale)
        opt.zero_grad(); loss.backward(); opt.step(); schedule.step()
        with torch.no_grad():
            logit_scale.clamp_(0, math.log(100))                            # as in CLIP: temperature >= 0.01
        history["loss"].append(loss.item())
        if step % eval_every == 0:
            top1, top5 = zero_shot_accuracy(img_enc, txt_enc)
            history["step"].append(step); history["top1"].append(top1); history["top5"].append(top5)
    return img_enc, txt_enc, logit_scale, history

def mean_cosine_between_different_images(img_enc, n=64):
    with torch.no_grad():
        e = F.normalize(img_enc(X_test[:n]), dim=-1)
    c = e @ e.T
    return ((c.sum() - c.trace()) / (n * (n - 1))).item()

def positives_only(image_emb, text_emb, logit_scale):         # the notes' objective: just raise each pair's cosine
    return -F.cosine_similarity(image_emb, text_emb).mean()

t0 = time.perf_counter()
collapsed_img, collapsed_txt, _, collapsed_hist = train_pair(positives_only, steps=50, eval_every=25)
collapse_cos = mean_cosine_between_different_images(collapsed_img)
print(f"positives only, 50 steps ({time.perf_counter() - t0:.0f} s): mean cosine between DIFFERENT images = {collapse_cos:.4f}, "
      f"zero-shot top-1 = {collapsed_hist['top1'][-1]:.1%} (chance: 1%)")
assert collapse_cos > 0.95, "expected collapse: every image mapped to (nearly) the same vector"

# %% [markdown]
# That is the collapse: every image gets (almost) the same embedding, so the model can't tell any two images apart.
# Now the real objective, for 500 steps (about 15 seconds on a 2-core laptop):

# %% tags=["varies"]
seed_everything(0)
fresh_img, fresh_txt = TinyImageEncoder(), TinyTextEncoder(len(vocab))
batch_idx = torch.arange(12) * 11 % 100          # 12 images of different colours and shapes
with torch.no_grad():
    sim_before = similarity_logits(fresh_img(X_train[batch_idx]), fresh_txt(T_train[batch_idx]), torch.tensor(0.0))

steps = 500
t0 = time.perf_counter()
img_enc, txt_enc, logit_scale, hist = train_pair(clip_loss, steps=steps)
contrast_cos = mean_cosine_between_different_images(img_enc)
print(f"contrastive, {steps} steps ({time.perf_counter() - t0:.0f} s): mean cosine between different images = {contrast_cos:.3f}; "
      f"zero-shot top-1 {hist['top1'][-1]:.1%}, top-5 {hist['top5'][-1]:.1%} (chance: 1% and 5%); "
      f"learned temperature {1 / logit_scale.exp().item():.3f}")
assert hist["loss"][-1] < 0.5 * hist["loss"][0], "the contrastive loss should at least halve"
assert hist["top1"][-1] > 0.05 and contrast_cos < collapse_cos, "zero-shot should appear, without collapse"

# %% tags=["varies"]
with torch.no_grad():
    sim_after = similarity_logits(img_enc(X_train[batch_idx]), txt_enc(T_train[batch_idx]), torch.tensor(0.0))
fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
axes[0].plot(hist["loss"]); axes[0].set(xlabel="step", ylabel="InfoNCE loss", title="training loss")
axes[1].plot(hist["step"], hist["top1"], label="top-1"); axes[1].plot(hist["step"], hist["top5"], label="top-5")
axes[1].plot(collapsed_hist["step"], collapsed_hist["top1"], "k--", label="top-1, positives only")
axes[1].axhline(0.01, color="grey", lw=0.8); axes[1].set(xlabel="step", ylabel="zero-shot accuracy (500 test images)",
                                                         title="zero-shot appears"); axes[1].legend()
plt.tight_layout(); plt.show()
rows = [f"image: {tw.CLASSES[train_set[int(i)][1]].replace('_', ' ')}" for i in batch_idx]
cols = [captions[int(i)][-26:] for i in batch_idx]
fig, axes = plt.subplots(1, 2, figsize=(15, 5.5))
show_matrix(sim_before, "cosine(image, caption), before training", rows=rows, cols=cols, ax=axes[0], fmt=".1f")
show_matrix(sim_after, f"after {steps} steps: the diagonal lights up", rows=rows, cols=cols, ax=axes[1], fmt=".1f")
plt.tight_layout(); plt.show()

# %% [markdown]
# Before training every cosine is about the same; after training the diagonal (the true pairs) stands out. Cells off
# the diagonal that share a colour or a shape with the true pair light up partly: the model has learned the two
# attributes separately. In a real batch two captions can also describe the same thing ("a red star", "a photo of a
# red star"); both are then right for either image, a "false negative" that real CLIP lives with too.
#
# ## 5 · The course's ToyCLIP: openai's CLIP architecture, only smaller
#
# Our 15-second model gets a real but modest zero-shot accuracy. The course ships **ToyCLIP**, trained in under an
# hour on 2 CPU cores with `python -m course_utils.toyclip train` (its model card, `data/README.md`, gives the recipe
# and the measured time). It is not a look-alike: it is an instance of
# openai's own `clip.model.CLIP` class, with the real 49,408-token vocabulary and 77-token context, built by the
# same `clip.model.build_model` function that `clip.load` uses for the real weights. Every later notebook uses it in offline mode.
#
# Two differences from our 15-second model, and one from ViT-B/32, matter later. Our tiny encoders above *average* their
# tokens; CLIP, and so ToyCLIP, pools like the paper: the image tower reads its CLS token, the text tower the
# end-of-text token. And `build_model` infers a vision tower's head count from its width (width / 64): right for
# ViT-B/32 (768 / 64 = 12 heads), but ToyCLIP's 128-wide tower is split into 8 heads of 16, so the course's loader
# sets the head count after building (`models.set_vision_heads`). Loaded by `clip.load` alone, the same file would
# give 2 heads of 64: the same weights, other heads, other head roles in notebook 06.

# %% tags=["nbval-check-output"]
toy, toy_preprocess = load_clip("toy", device="cpu")
b32 = random_clip("ViT-B/32")                       # openai's ViT-B/32 architecture, random weights (no download)

def describe(model):
    info = model_info(model).as_dict()
    info.update(text_layers=len(model.transformer.resblocks), text_width=model.ln_final.weight.shape[0],
                vocab=model.vocab_size, context=model.context_length,
                params=f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M")
    return info

toy_info, b32_info = describe(toy), describe(b32)
print(f"{'':>18} {'ToyCLIP':>10} {'ViT-B/32':>10}")
for key in toy_info:
    print(f"{key:>18} {toy_info[key]!s:>10} {b32_info[key]!s:>10}")
assert type(toy) is type(b32)
assert set(toy.state_dict()) <= set(b32.state_dict()), "every ToyCLIP weight has a namesake in ViT-B/32"
print("same class:", type(toy).__module__ + "." + type(toy).__name__, "| every ToyCLIP weight name exists in ViT-B/32")

# %% tags=["nbval-check-output"]
print(toy.visual.transformer.resblocks[0])      # one residual block: identical layout in ViT-B/32, 768 wide instead of 128

# %% tags=["varies"]
import clip
from course_utils.toyclip import zero_shot
top1, top5, images_per_s = zero_shot(toy, tw.ToyShapes(train=False, n=1000))
print(f"ToyCLIP zero-shot on 1,000 toy test images: top-1 {top1:.1%}, top-5 {top5:.1%} "
      f"(your 15-second model: {hist['top1'][-1]:.1%} on 500). Numbers about ToyCLIP, not openai CLIP.")
assert top1 > hist["top1"][-1]

# %% [markdown]
# ## 6 · Explore: type a caption, see the nearest scenes
#
# ⏩ *Skip if short on time: run these cells without stopping to discuss them; nothing later needs the discussion.*
#
# ToyCLIP embeds 300 multi-object scenes once. Your caption is embedded and compared with all of them, and the five
# most similar scenes are shown. Try `"a red star"`, `"two shapes: a blue ring and a yellow square"`, `"a large purple
# hexagon at the top left"`, or something the world doesn't contain.

# %% tags=["varies"]
gallery = tw.scenes(300)
with torch.no_grad():
    gallery_emb = F.normalize(toy.encode_image(torch.stack([toy_preprocess(s.image) for s in gallery])), dim=-1)

def nearest_scenes(caption="a red star", k=5):
    if not caption.strip():
        print("Type a caption first."); return
    with torch.no_grad():
        query = F.normalize(toy.encode_text(clip.tokenize([caption])), dim=-1)[0]
    scores = gallery_emb @ query
    top = scores.topk(k)
    fig, axes = plt.subplots(1, k, figsize=(2.6 * k, 3))
    for ax, score, i in zip(axes, top.values, top.indices):
        ax.imshow(gallery[i].image); ax.set_axis_off()
        ax.set_title(f"cos {score:.2f}\n" + gallery[i].caption[:30], fontsize=7)
    fig.suptitle(f"nearest scenes to {caption!r}"); plt.tight_layout(); plt.show()

nearest_scenes("a red star")

# %% tags=["varies"]
widgets.interact_manual(nearest_scenes, caption=widgets.Text("two shapes: a blue ring and a yellow square"),
                        k=widgets.IntSlider(5, 3, 8));


# %% [markdown]
# **Open task (~10 min): words the world doesn't have.** ToyCLIP knows ten colours, ten shapes, six patterns, two sizes
# and four positions. Put three captions it could have seen and three it couldn't ("a teal circle", "a red circle *without* a
# star", "a hexagon") in `my_captions` and look at the nearest scenes. What does the model do with a word it never saw:
# ignore it, or let it pull towards something? One sentence per caption.

# %% tags=["varies"]
my_captions = ["a red star", "a blue ring at the top left", "a teal circle"]   # replace with your six
assert all(isinstance(c, str) and c.strip() for c in my_captions), "my_captions: a list of non-empty strings"
for caption in my_captions:
    nearest_scenes(caption, k=4)

# %% [markdown]
# ## Summary
#
# - An image encoder and a text encoder can only be compared after each **projects into one shared space**; CLIP
#   normalises both, so similarities are cosines.
# - CLIP's loss is a **symmetric cross-entropy over the batch**: each image must pick its caption among all captions,
#   and each caption its image. Without those negatives the objective is solved by collapse (we measured it: cosine
#   between different images close to 1, zero-shot at chance).
# - A learnable **temperature** scales the cosines before the softmax (CLIP: starts at 0.07, clamped at 0.01).
# - **Zero-shot** classification is nearest text embedding among one prompt per class.
# - ToyCLIP is openai's `clip.model.CLIP`, only smaller: the same code paths work for both, which is why the rest of
#   the course runs offline.
#
# ## Quick quiz
# 1. With a batch of 256 pairs, how many negatives does each image see?
# 2. Why does CLIP normalise the embeddings before the dot product?
# 3. What happens to the softmax over a row of logits when the temperature goes from 0.07 to 0.01?
# 4. Two captions in a batch are both "a red star". What does the loss ask for, and why is that a problem?
#
# <details><summary>Answers</summary>
#
# 1. 255: every other caption in the batch.
# 2. So that the score is a cosine and can't be raised just by making a vector longer, and so that one temperature
#    controls the scale.
# 3. The logits are multiplied by 100 instead of about 14, so the softmax gets much sharper (closer to one-hot).
# 4. It asks each image to prefer its own copy over the other, identical caption, which is impossible: a "false
#    negative". It adds noise to training; large batches of varied captions make it rare.
# </details>
#
# ## Further reading
#
# - Radford et al., "Learning Transferable Visual Models From Natural Language Supervision", ICML 2021,
#   [arXiv:2103.00020](https://arxiv.org/abs/2103.00020); code and weights:
#   [openai/CLIP](https://github.com/openai/CLIP). This notebook follows section 2.3 (the contrastive objective and
#   its pseudocode, Figure 3) and section 2.4 (the encoders and the projection into one space).
# - van den Oord, Li and Vinyals, "Representation Learning with Contrastive Predictive Coding", 2018,
#   [arXiv:1807.03748](https://arxiv.org/abs/1807.03748): the InfoNCE loss that CLIP's symmetric loss builds on.
