# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
# ---

# %% [markdown]
# # 05 · Decomposing CLIP's image embedding
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/inside-clip/inside-clip/blob/main/notebooks/05_decomposing_clip.ipynb)
#
# **What you will be able to do after this notebook**
# - write CLIP's image embedding as an exact sum of direct contributions: layers × heads × source tokens, plus the
#   MLP terms and the embedding term (Gandelsman et al., ICLR 2024);
# - explain how `ln_post`, which is not linear, is made linear for one image, and where the biases go;
# - build the decomposition yourself and check it against `course_utils.decompose`, and check that it sums back to
#   `encode_image`;
# - mean-ablate parts of the sum and measure which layers carry the information zero-shot classification uses.
#
# **Expected time:** about 84 minutes at a learner's pace (43 of them on the exercises and open tasks; estimated as the instructor guide explains). It runs in under a minute offline on a laptop CPU,
# a few minutes in real mode on CPU.
#
# In real mode the model is openai's ViT-B/32 and the data CIFAR-100; offline, ToyCLIP and the toy world. The
# algebra is the same, and every check below holds in both.

# %% tags=["colab-setup"]
# Colab setup: on Colab this installs the course package (keeping Colab's torch); anywhere else it does nothing.
import sys
if "google.colab" in sys.modules:
    # !git clone -q --depth 1 -b main https://github.com/inside-clip/inside-clip /content/inside-clip
    # !pip install -q --no-deps -e /content/inside-clip openai-clip einops ftfy regex
    sys.path.insert(0, "/content/inside-clip")

# %% tags=["varies"]
# The exact decomposition of the image embedding, and mean-ablation to test which parts matter.
import tempfile

import torch
import torch.nn.functional as F
import matplotlib.pyplot as plt
from einops import rearrange

from course_utils import ablation
from course_utils.checks import check, assert_same
from course_utils.data import load_cifar100
from course_utils.decompose import decompose, head_contributions, load_head_contributions
from course_utils.env import banner, get_device, rehearsal_sized, start_lesson
from course_utils.inside_vit import trace_vit
from course_utils.models import build, load_clip, model_info
from course_utils.textspan import textspan_all
from course_utils.zero_shot import SINGLE_TEMPLATE, zero_shot_classifier

start_lesson(seed=0)

# %% tags=["varies"]
device = get_device()
model, preprocess = load_clip(device="cpu")     # the course's model; on the CPU first: the exactness checks are float32
model = model.float()
visual = model.visual
test_set = load_cifar100(train=False)
MODE = banner(model, test_set)                  # what produced every number below, read from what was loaded
WHO = f"{model.course_asset.name} on {test_set.course_asset.name}"
info = model_info(model)
images = torch.stack([preprocess(test_set[i][0]) for i in range(4)])      # [4, 3, R, R]
print(f"{model.course_asset.name}: L={info.layers} layers, H={info.heads} heads, N={info.grid ** 2 + 1} tokens, "
      f"D={info.width}, d={info.embed_dim}")

# %% [markdown]
# ## 1 · The residual stream is a sum
#
# Notebook 04 wrote every block as *add something to the stream*. Unroll the additions and the CLS token that
# `ln_post` reads is a sum of $1 + 2L$ terms:
#
# $$x_L[\text{CLS}] = \underbrace{x_0[\text{CLS}]}_{\text{embedding}} + \sum_{l=0}^{L-1} \text{attn}_l[\text{CLS}] + \sum_{l=0}^{L-1} \text{mlp}_l[\text{CLS}]$$

# %% tags=["nbval-check-output"]
with torch.no_grad():
    trace = trace_vit(model, images)
    parts = torch.stack([trace.residuals[0][:, 0]]
                        + [a[:, 0] for a in trace.attn_out] + [m[:, 0] for m in trace.mlp_out], dim=1)  # [B, 1+2L, D]
final_cls = trace.residuals[-1][:, 0]                                            # [B, D]
scale = final_cls.abs().max()
assert_same("embedding + Σ attention + Σ MLP at CLS == final CLS (relative)", parts.sum(1) / scale, final_cls / scale)


# %% [markdown]
# ## 2 · Making `ln_post` linear
#
# $\text{ln}_\text{post}(r) = \gamma \odot \frac{r - \mu(r)}{\sigma(r)} + \beta$. Subtracting the mean is linear
# ($\mu$ of a sum is the sum of the $\mu$s), and $\gamma \odot$ is linear. Only $\sigma(r)$ is not. The trick of the
# paper: for *one image*, $\sigma(r)$ is just a number. Fix it from the full residual and apply the same linear map
# to every part. The constant $\beta$ is then shared out (evenly, so nothing depends on how many parts there are).
#
# ### Exercise 1 · linearised_layer_norm · 🟡 medium · ~8 min
# `linearised_layer_norm(parts, residual, weight)`: parts `[B, P, D]`, the full residual `[B, D]` (the sum of the
# parts), γ `[D]` → `[B, P, D]`. Centre each part over its own D entries, divide by the residual's σ (the biased
# standard deviation, with `eps = 1e-5` inside the square root, as `nn.LayerNorm` does), multiply by γ.
# <details><summary>Hint 1 · the idea</summary>
#
# For one image σ is just a number, taken from the *whole* residual. Centre each part by its own mean, divide by
# that σ, scale by γ.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# σ comes from the residual `[B, D]`: biased variance, ε inside the square root, giving `[B]`; give it two trailing
# axes to broadcast against `[B, P, D]`. The mean of each part is over its last axis.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def linearised_layer_norm(parts, residual, weight):
    # BEGIN SOLUTION
    sigma = torch.sqrt(residual.var(dim=-1, unbiased=False) + 1e-5)       # [B]
    centred = parts - parts.mean(dim=-1, keepdim=True)                    # [B, P, D]
    return centred / sigma[:, None, None] * weight
    # END SOLUTION


# %% tags=["nbval-check-output"]
linearised_layer_norm = check("linearised_layer_norm", linearised_layer_norm)

# %% tags=["nbval-check-output"]
with torch.no_grad():
    linear_parts = linearised_layer_norm(parts, final_cls, visual.ln_post.weight)        # [B, 1+2L, D]
    lhs = linear_parts.sum(1) + visual.ln_post.bias
    rhs = visual.ln_post(final_cls)
assert_same("Σ linearised parts + β == ln_post(final CLS)", lhs, rhs, atol=1e-4)


# %% [markdown]
# ## 3 · Heads and source tokens
#
# An attention block's output at CLS is itself a sum, over heads $h$ and the tokens $j$ the CLS query reads from:
#
# $$\text{attn}_l[\text{CLS}] = \sum_h \sum_j \; p^{lh}_{\text{CLS},j} \; v^{lh}_j \, W^{h}_{O} \; + \; b_O$$
#
# $W^h_O$ is head h's slice of `out_proj.weight`: the columns that multiply head h's part of the concatenated heads.

# %%
from course_utils import diagrams   # the sum we are building, drawn small (drawn by the course with matplotlib)
_ = diagrams.decomposition_tree()

# %% [markdown]
# ### Exercise 2 · head_token_terms · 🔴 hard · ~12 min
# `head_token_terms(cls_probs, values, out_proj_weight)`: `cls_probs` `[B, H, N]` (row CLS of the attention),
# `values` `[B, H, N, d_h]`, `out_proj_weight` `[D, D]` → `[B, N, H, D]`, the term for each source token and head.
# <details><summary>Hint 1 · the idea</summary>
#
# Each term is a probability (a number) times a value vector times that head's slice of `out_proj`.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# Split `out_proj_weight` `[D, D]` by its *input* columns into per-head `[H, d_h, D]` slices (einops). Then a single
# `torch.einsum` over b, h, n and the value axis produces `[B, N, H, D]`.
# </details>


# %% jupyter={"source_hidden": true} tags=["solution"]
def head_token_terms(cls_probs, values, out_proj_weight):
    # BEGIN SOLUTION
    H = values.shape[1]
    w_o = rearrange(out_proj_weight, "D (h dh) -> h dh D", h=H)            # [H, d_h, D]
    return torch.einsum("bhn,bhnk,hkD->bnhD", cls_probs, values, w_o)      # [B, N, H, D]
    # END SOLUTION


# %% tags=["nbval-check-output"]
head_token_terms = check("head_token_terms", head_token_terms)

# %% tags=["nbval-check-output"]
block = visual.transformer.resblocks[-1]
with torch.no_grad():
    terms = head_token_terms(trace.attn_probs[-1][:, :, 0], trace.values[-1], block.attn.out_proj.weight)   # [B, N, H, D]
    total = terms.sum(dim=(1, 2)) + block.attn.out_proj.bias
scale = trace.attn_out[-1][:, 0].abs().max()
assert_same("Σ heads, tokens + bias == last attention block at CLS (relative)", total / scale, trace.attn_out[-1][:, 0] / scale)


# %% [markdown]
# ## 4 · Folding: why this is cheap
#
# Each of the $L \cdot N \cdot H$ terms is a D-vector that still has to go through the linearised `ln_post` and `proj`.
# Done naively, that is $L \cdot N \cdot H$ products with a `[D, d]` matrix: more work than the forward pass. But
# centring, γ and `proj` are one linear map $G$ `[D, d]`, and $W^h_O G$ is one `[d_h, d]` matrix per head. Each value
# vector goes through it once.
#
# ### Exercise 3 · fold_ln_proj · 🟡 medium · ~8 min
# Return $G$ such that `(p - p.mean(-1, keepdim=True)) * weight @ proj == p @ G` for every `p`.
# <details><summary>Hint 1 · the idea</summary>
#
# Centring, scaling by γ and projecting are all linear, so they compose into one matrix G `[D, d]`.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# Scaling by γ then `proj` is `diag(γ) @ proj`: broadcast γ as a column. Centring the input row is the same as
# centring that matrix over its `D` axis (subtract its column means).
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def fold_ln_proj(weight, proj):
    # BEGIN SOLUTION
    scaled = weight[:, None] * proj                    # [D, d]
    return scaled - scaled.mean(dim=0, keepdim=True)
    # END SOLUTION


# %% tags=["nbval-check-output"]
fold_ln_proj = check("fold_ln_proj", fold_ln_proj)

# %% [markdown]
# Now all the pieces together: your functions give the full decomposition of one image, `[L, N, H, d]`, which
# `course_utils.decompose` computes with the folded matrices. The biases: `out_proj.bias` is split evenly over the
# layer's N·H terms, and β @ proj evenly over all L·N·H + L + 1 parts. Each part is centred by its *own* mean: this is
# `decompose(..., convention="centred")`. The next section shows the other way, the authors'.

# %% tags=["varies"]
with torch.no_grad():
    sigma = torch.sqrt(final_cls.var(dim=-1, unbiased=False) + 1e-5)                   # [B]
    G = fold_ln_proj(visual.ln_post.weight, visual.proj)                                # [D, d]
    L, N, H = info.layers, info.grid ** 2 + 1, info.heads
    beta_share = (visual.ln_post.bias @ visual.proj) / (L * N * H + L + 1)
    mine = torch.stack([
        (head_token_terms(p[:, :, 0], v, blk.attn.out_proj.weight) + blk.attn.out_proj.bias / (N * H)) @ G
        / sigma[:, None, None, None] + beta_share
        for p, v, blk in zip(trace.attn_probs, trace.values, visual.transformer.resblocks)], dim=1)   # [B, L, N, H, d]
    dec = decompose(model, images, convention="centred")
    expected = model.encode_image(images)
print("decomposition:", tuple(dec.attn.shape), "attention terms +", tuple(dec.mlp.shape), "MLP/embedding terms")
s = dec.attn.abs().max()
assert_same("your decomposition vs decompose(convention='centred') (relative)", mine / s, dec.attn / s)
rel = ((dec.total() - expected).norm(dim=-1) / expected.norm(dim=-1)).max().item()
assert rel < 1e-5
print(f"✅ all parts sum back to encode_image: max relative error {'< 1e-5' if rel < 1e-5 else rel}")

# %% [markdown]
# ### Two ways to share the mean
#
# ⏩ *Skip if short on time: run these cells without stopping to discuss them; nothing later needs the discussion.*
#
# `ln_post` subtracts the residual's mean $\mu$ and adds $\beta$. Which part "owns" how much of them is a choice, and
# every choice keeps the sum exact. There are two reasonable ones:
#
# - **centred** (what you just built): each part is centred by its *own* mean; $\beta$ is split evenly over all
#   $L N H + L + 1$ parts. A part's term depends on that part alone (and the image's σ).
# - **paper** (the authors' code, `prs_hook.py` in the paper's repository): the residual stream has $2L + 1$ terms
#   (embedding, L attention layers, L MLPs); each takes $\frac{1}{2L+1}$ of the image's total mean $\mu$ and of
#   $\beta$, and an attention layer's share is split again over its $N \cdot H$ (token, head) parts:
#
# $$p \;\mapsto\; \Big(\big(p - \tfrac{\mu}{(2L+1)NH}\big) \odot \frac{\gamma}{\sigma} + \tfrac{\beta}{(2L+1)NH}\Big)\,\text{proj}$$
#
# `decompose` uses the paper's convention by default, so that a number computed here is the number the authors' code
# computes. The course checks that: every per-token, per-head and MLP term equals the output of the authors' own code
# (run on the same random ViT-B/16 and on ToyCLIP) to 1e-5. Build the paper's version from your pieces:

# %% tags=["nbval-check-output"]
with torch.no_grad():
    mu = final_cls.mean(dim=-1)                                                        # [B]: the image's own mean
    gamma_proj = visual.ln_post.weight[:, None] * visual.proj                           # [D, d]: γ ⊙ proj, not centred
    share = (visual.ln_post.bias @ visual.proj - (mu / sigma)[:, None] * gamma_proj.sum(0)) / ((2 * L + 1) * N * H)  # [B, d]
    mine_paper = torch.stack([
        (head_token_terms(p[:, :, 0], v, blk.attn.out_proj.weight) + blk.attn.out_proj.bias / (N * H)) @ gamma_proj
        / sigma[:, None, None, None] + share[:, None, None]
        for p, v, blk in zip(trace.attn_probs, trace.values, visual.transformer.resblocks)], dim=1)   # [B, L, N, H, d]
    paper = decompose(model, images)                                                    # convention="paper"
s = paper.attn.abs().max()
assert_same("your paper-convention terms vs decompose() (relative)", mine_paper / s, paper.attn / s)
assert_same("the paper's parts sum to encode_image too (relative)", paper.total() / expected.norm(), expected / expected.norm())

# %% [markdown]
# **Where and by how much do they differ?** Subtract one convention from the other, part by part. Since both subtract
# the same total mean and add the same β, only *who gets how much* differs, so every difference lies along two fixed
# directions: $\gamma\,\text{proj}$ (the mean's) and $\beta\,\text{proj}$. The cell measures that on the course's model
# and on a random ViT-B/16 (openai's architecture with random weights: the bookkeeping doesn't depend on training).

# %% tags=["varies"]
def convention_gap(m, x):
    """Per head (token-summed): median and max ‖paper − centred‖ / ‖paper‖, and the share of the difference that
    lies in the span of γ @ proj and β @ proj."""
    with torch.no_grad():
        a, b = decompose(m, x).heads(), decompose(m, x, convention="centred").heads()    # [B, L, H, d] each
        v = m.visual
        span = torch.linalg.qr(torch.stack([v.ln_post.weight @ v.proj, v.ln_post.bias @ v.proj]).T).Q   # [d, 2]
    diff = a - b
    rel = (diff.norm(dim=-1) / a.norm(dim=-1)).flatten()
    inside = (diff @ span).norm() ** 2 / diff.norm() ** 2
    return rel.median().item(), rel.max().item(), inside.item()

b16 = build("ViT-B/16", seed=0).float()
for name, m, x in [(model.course_asset.name, model, images), ("random ViT-B/16", b16, torch.randn(2, 3, 224, 224))]:
    med, worst, inside = convention_gap(m, x)
    print(f"{name:<22} heads differ by {100 * med:4.1f}% (median), {100 * worst:5.1f}% (max); "
          f"{100 * inside:.2f}% of the difference lies along γ·proj and β·proj")
del b16

# %% [markdown]
# A few percent per head, always along the same two directions. Does it change what we conclude? Section 6 re-runs the
# head analysis in both conventions and counts how many heads' TextSpan descriptions (next notebook) change.
#
# **Scale.** `decompose(model, images)` returns parts that sum to `encode_image`. With `normalize=True` every part is
# divided by the norm of the whole embedding, so the parts sum to the *unit* embedding that zero-shot classification
# compares with texts. The authors' code uses the normalised scale; `head_contributions` below uses it by default too.

# %% tags=["nbval-check-output"]
unit = decompose(model, images, normalize=True)
assert_same("normalised parts sum to the unit embedding", unit.total(), F.normalize(expected, dim=-1))

# %% [markdown]
# ## 5 · Which layers contribute?
#
# The norm of each layer's direct contribution (summed over tokens and heads), averaged over images, next to the MLPs'.

# %% tags=["varies"]
layer_norms = unit.layers().norm(dim=-1).mean(0)            # [L]
mlp_norms = unit.mlp[:, 1:].norm(dim=-1).mean(0)             # [L]
x = torch.arange(info.layers)
plt.figure(figsize=(7, 3))
plt.bar(x - 0.2, layer_norms, 0.4, label="attention (all heads, all tokens)")
plt.bar(x + 0.2, mlp_norms, 0.4, label="MLP at CLS")
plt.xlabel("layer"); plt.ylabel("‖contribution‖ (normalised)"); plt.legend(); plt.title(f"direct contributions, {WHO}")
plt.tight_layout(); plt.show()


# %% [markdown]
# A large norm doesn't mean a *useful* contribution: a part that is the same for every image is a constant offset and
# tells the classifier nothing. Mean-ablation asks the right question.
#
# ## 6 · Mean-ablation
#
# Replace a part by its **average over the dataset** and measure zero-shot accuracy again. If accuracy doesn't move,
# that part carries no image-specific information *directly* to the output. (It may still matter indirectly, through
# later layers: mean-ablating the direct term leaves everything downstream untouched.)
#
# ### Exercise 4 · mean_ablated_sum · 🟢 easy · ~5 min
# `mean_ablated_sum(parts, ablate)`: `parts` `[N, P, d]` (P parts per image), `ablate` `[P]` booleans → `[N, d]`, the sum
# over parts with each ablated part replaced by its mean over the N images.
# <details><summary>Hint 1 · the idea</summary>
#
# An ablated part is replaced, in every image, by its mean over the images; then sum the parts.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# The means over images are `[1, P, d]` with `keepdim=True`; `torch.where` picks per part, with `ablate` reshaped to
# broadcast over images and `d`.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def mean_ablated_sum(parts, ablate):
    # BEGIN SOLUTION
    means = parts.mean(dim=0, keepdim=True).expand_as(parts)
    return torch.where(ablate[None, :, None], means, parts).sum(dim=1)
    # END SOLUTION


# %% tags=["nbval-check-output"]
mean_ablated_sum = check("mean_ablated_sum", mean_ablated_sum)

# %% [markdown]
# Over a whole dataset we can't keep `[N_img, L, N, H, d]` (for 10,000 CIFAR images and ViT-B/32 that's
# 10,000 × 12 × 50 × 12 × 512 × 4 bytes ≈ 147 GB). `head_contributions` streams the data and keeps only the
# token-summed heads `[N_img, L, H, d]`, the CLS-to-CLS terms and the MLP terms. With `FAST` (on by default on CPU) it
# uses a fixed subset of 1,000 test images. Even the token-summed heads grow with the data (ViT-L/14 on 50,000 images:
# 50,000 × 24 × 16 × 768 × 4 bytes ≈ 59 GB), so `head_contributions(..., store="some/folder")` writes each batch to
# disk and hands back arrays read from there: memory then stays flat however many images you stream, and
# `load_head_contributions("some/folder")` reopens the result in a later session.

# %% tags=["varies"]
FAST = device.type == "cpu"
subset = torch.randperm(len(test_set), generator=torch.Generator().manual_seed(0))[:rehearsal_sized(1000, 100)].tolist() if FAST else range(len(test_set))
data = torch.utils.data.Subset(test_set, subset)
if device.type != "cpu":                        # the streaming pass is the slow part: use the GPU
    model = model.to(device)
contrib = head_contributions(model, data, preprocess, batch_size=64)
classifier = zero_shot_classifier(model, test_set.classes, SINGLE_TEMPLATE).cpu()
model = model.cpu()
print("heads:", tuple(contrib.heads.shape), "· cls:", tuple(contrib.cls.shape), "· mlp:", tuple(contrib.mlp.shape))

# %% [markdown]
# **Predict, then run.** The next cell mean-ablates four groups of parts: all the MLPs, all the CLS-to-CLS terms, every
# attention layer but the last two, and the last two. Before running, order them from "costs the least accuracy" to
# "costs the most", and write your order in `my_order` (a list of the numbers 1 to 4, in the order the cell prints them).

# %%
my_order = None   # e.g. [1, 2, 3, 4]

# %% tags=["varies"]
L = info.layers
rows = [("nothing ablated", ablation.mean_ablate(contrib, classifier)),
        ("all MLPs (block MLPs + embedding term)", ablation.mean_ablate(contrib, classifier, mlp_terms=range(L + 1))),
        ("all CLS-to-CLS attention terms", ablation.mean_ablate(contrib, classifier, cls_layers=range(L))),
        (f"attention layers 0..{L - 3} (all but the last 2)", ablation.mean_ablate(contrib, classifier, attn_layers=range(L - 2))),
        ("the last 2 attention layers", ablation.mean_ablate(contrib, classifier, attn_layers=[L - 2, L - 1]))]
print(f"zero-shot top-1 after mean-ablation ({WHO}, {len(contrib.labels)} images)")
for what, acc in rows:
    print(f"  {what:<48} {100 * acc:5.1f}%")
curve = ablation.cumulative_layer_ablation(contrib, classifier)
plt.figure(figsize=(6, 3))
plt.plot(range(L + 1), [100 * a for a in curve], "o-")
plt.xlabel("attention layers mean-ablated (0 .. k-1)"); plt.ylabel("top-1 (%)")
plt.title(f"cumulative ablation from the first layer, {WHO}"); plt.grid(alpha=0.3); plt.tight_layout(); plt.show()

# %%
if my_order is not None:
    assert sorted(my_order) == [1, 2, 3, 4], "my_order: the numbers 1 to 4, each once"
    measured = sorted(range(1, 5), key=lambda i: -rows[i][1])           # least costly first
    print("measured order:", measured, "· yours:", my_order, "· same" if measured == list(my_order) else "· different")

# %% [markdown]
# What to read off, and what the paper found. For the OpenCLIP ViTs trained on LAION that the paper studies (its main
# model is ViT-H-14), on ImageNet, Gandelsman et al. report that mean-ablating all the MLPs or the CLS-to-CLS terms
# costs little, and that the *direct* effect sits in the last few attention layers: ablating the attention layers one
# by one from the first barely moves accuracy until the last four. The
# same shape appears here: the curve stays flat while early layers are ablated and drops when the late ones are.
# Early layers still matter, but *indirectly*: they build the tokens that late heads read.
#
# In offline mode, ToyCLIP has 6 layers, so "late" means the last two. Run the notebook in real mode on
# Colab to see the ViT-B/32 curve on CIFAR-100.
#
# ### Does the convention change the story?
#
# ⏩ *Skip if short on time: run these cells without stopping to discuss them; nothing later needs the discussion.*
#
# The same analysis in both conventions, on a smaller sample streamed to disk (as you would for a large dataset): the
# mean-ablation table, and for each head of the last two layers, the 5 texts TextSpan (next notebook) picks from the
# class prompts. A head "changes" if its 5 picks differ.


# %% [markdown]
# **Open task (~10 min): the head that matters most.** Mean-ablate the heads of the last layer *one at a time* (use
# `ablation.mean_ablate(contrib, classifier, heads=[(L - 1, h)])`) and find the head whose removal costs the most
# accuracy. Write it in `my_costliest_head`. Then keep it in mind for notebook 06: what do its texts say it writes?

# %%
my_costliest_head = None   # (layer, head)

# %% tags=["varies"]
if my_costliest_head is not None:
    l, h = my_costliest_head
    assert 0 <= l < L and 0 <= h < info.heads, "my_costliest_head: (layer, head) of this model"
    print(f"L{l}H{h} ablated: top-1 {100 * ablation.mean_ablate(contrib, classifier, heads=[(l, h)]):.1f}% "
          f"(nothing ablated: {100 * rows[0][1]:.1f}%)")

# %% tags=["varies"]
few = torch.utils.data.Subset(test_set, list(subset)[:rehearsal_sized(300, 60)])
late = [L - 2, L - 1]
results = {}
with tempfile.TemporaryDirectory() as folder:
    for convention in ("paper", "centred"):
        stored = head_contributions(model, few, preprocess, batch_size=64, convention=convention,
                                    store=f"{folder}/{convention}", progress=False)
        assert torch.equal(load_head_contributions(f"{folder}/{convention}").heads, stored.heads)   # reopened from disk
        results[convention] = (
            [ablation.mean_ablate(stored, classifier, attn_layers=late), ablation.mean_ablate(stored, classifier, mlp_terms=range(L + 1))],
            {k: r.indices for k, r in textspan_all(stored, classifier, layers=late, n_texts=5).items()})
        del stored                                                                     # close the files before cleanup
for convention, (accs, _) in results.items():
    print(f"{convention:>8}: last 2 attention layers ablated {100 * accs[0]:5.1f}%, all MLPs ablated {100 * accs[1]:5.1f}%")
paper_picks, centred_picks = results["paper"][1], results["centred"][1]
same = sum(paper_picks[k] == centred_picks[k] for k in paper_picks)
same_first = sum(paper_picks[k][0] == centred_picks[k][0] for k in paper_picks)
overlap = sum(len(set(paper_picks[k]) & set(centred_picks[k])) for k in paper_picks) / len(paper_picks)
print(f"{len(paper_picks)} heads of layers {late}: same 5 picks in the same order {same}, same first pick {same_first}; "
      f"on average {overlap:.1f} of the 5 texts shared")

# %% [markdown]
# The conventions shift each head a little along two directions. The ablation numbers barely move and (nearly) every
# head keeps its first pick; the later picks, chosen among texts whose scores are close, can change. A description that
# changes with a bookkeeping choice deserves to be held lightly: read a head's first texts with more confidence than
# its fifth.
#
# ## Summary
#
# | piece | shape (ViT-B/32) | checked against |
# |---|---|---|
# | residual stream at CLS = 1 + 2L terms | `[B, 25, 768]` | the final CLS |
# | linearised `ln_post` (σ of the image itself) | `[B, P, 768]` | `ln_post` |
# | head × token terms | `[B, 50, 12, 768]` per layer | the attention block at CLS |
# | folded readout G, W_O,h G | `[768, 512]`, `[12, 64, 512]` | `decompose` |
# | full decomposition | `[B, 12, 50, 12, 512]` + `[B, 13, 512]` | `encode_image` (1e-5 relative) |
# | two conventions for μ and β | paper (default) or centred | the authors' code, per term (1e-5) |
# | mean-ablation | accuracy per ablated part | zero-shot accuracy |
#
# ## Quiz
# 1. Why is the decomposition exact even though LayerNorm is not linear?
# 2. Why split β evenly over all parts rather than giving it all to the embedding term?
# 3. Ablating a layer's *direct* contribution costs nothing. Can you remove that layer from the model?
# 4. For ViT-L/14, what is the shape of the attention part of the decomposition of one image?
#
# <details><summary>Answers</summary>
#
# 1. For a given image σ is a fixed number; with it fixed, ln_post is an affine map, and the parts are mapped by its
#    linear part. The approximation would only enter if σ were taken from something other than the full residual.
# 2. Any split keeps the sum exact. An even split keeps every part comparable (no part gets a large constant), and
#    constants vanish under mean-ablation anyway.
# 3. No. Its output feeds every later layer (indirect effect); mean-ablation of the direct term leaves that path intact.
# 4. `[1, 24, 257, 16, 768]`: 24 layers, 257 tokens (16 × 16 patches + CLS), 16 heads, embedding width 768.
# </details>
#
# ## Further reading
#
# - Gandelsman, Efros and Steinhardt, "Interpreting CLIP's Image Representation via Text-Based Decomposition", ICLR
#   2024, [arXiv:2310.05916](https://arxiv.org/abs/2310.05916); code:
#   [yossigandelsman/clip_text_span](https://github.com/yossigandelsman/clip_text_span). This notebook follows the
#   paper's decomposition of the image representation into layers, heads and tokens, and its mean-ablation study;
#   the repository's `prs_hook.py` is the code our `convention="paper"` is tested against.
