# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
# ---

# %% [markdown]
# # 04 · Inside CLIP's vision transformer
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/inside-clip/inside-clip/blob/main/notebooks/04_inside_clip_vit.ipynb)
#
# **What you will be able to do after this notebook**
# - read `print(model)` for CLIP's ViT and say what each part does and what shape it produces;
# - show that the patch-embedding convolution is a linear map applied to flattened patches;
# - explain the CLS token and the learned positional embeddings, and how they differ from notebook 01's sinusoids;
# - compute one residual block by hand (ln_1, q/k/v from `in_proj_weight`, attention, `out_proj`, ln_2, MLP with
#   QuickGELU) and match the model's block to 1e-5;
# - draw where the CLS token looks, per layer and head;
# - finish the forward pass with `ln_post` and `proj`, and match `encode_image`.
#
# **Expected time:** about 86 minutes at a learner's pace (49 of them on the exercises and open tasks; estimated as the instructor guide explains). It runs in under a minute on a laptop CPU.
#
# In real mode this is openai's ViT-B/32; offline it is ToyCLIP, the same class (`clip.model.CLIP`) with fewer and
# narrower layers. Every check below holds in both, and the text gives ViT-B/32's shapes.

# %% tags=["colab-setup"]
# Colab setup: on Colab this installs the course package (keeping Colab's torch); anywhere else it does nothing.
import sys
if "google.colab" in sys.modules:
    # !git clone -q --depth 1 -b main https://github.com/inside-clip/inside-clip /content/inside-clip
    # !pip install -q --no-deps -e /content/inside-clip openai-clip einops ftfy regex
    sys.path.insert(0, "/content/inside-clip")

# %% tags=["varies"]
# One model, opened up: the ViT tracer and the block pieces we rebuild by hand.
import math
import torch
import torch.nn.functional as F
import matplotlib.pyplot as plt
import ipywidgets as widgets
from einops import rearrange

from course_utils import by_hand
from course_utils.checks import check, assert_same
from course_utils.data import load_cifar100
from course_utils.env import banner, start_lesson
from course_utils.inside_vit import block_params, patch_tokens, trace_vit
from course_utils.models import ARCHITECTURES, OPENAI_VIT_MODELS, load_clip, model_info
from course_utils.zero_shot import example

start_lesson(seed=0)
device = torch.device("cpu")      # everything here is one image; the CPU keeps the checks in float32

# %% tags=["varies"]
model, preprocess = load_clip(device=device)   # the course's model: ViT-B/32 unless COURSE_MODEL names another
model = model.float()
visual = model.visual
test_set = load_cifar100(train=False)
MODE = banner(model, test_set)                  # what produced every number below, read from what was loaded
image, label = example(test_set, 15)
x = preprocess(image).unsqueeze(0)                      # [1, 3, R, R]
info = model_info(model)
print(f"{model.course_asset.name}:", info)

# %% [markdown]
# ## 1 · `print(model)`, explained
#
# The course notes print the model and stops there. Here is the visual half, top to bottom (ViT-B/32's numbers):
#
# | module | ViT-B/32 | what it does | output shape |
# |---|---|---|---|
# | `conv1` | `Conv2d(3, 768, kernel_size=32, stride=32, bias=False)` | cuts the 224 px image into 7 × 7 patches of 32 px and maps each to 768 numbers | `[B, 768, 7, 7]` |
# | `class_embedding` | a learned vector `[768]` | the CLS token, prepended to the 49 patch tokens | `[B, 50, 768]` |
# | `positional_embedding` | learned `[50, 768]` | added to the tokens so position is known | `[B, 50, 768]` |
# | `ln_pre` | `LayerNorm(768)` | normalises the tokens before the first block | `[B, 50, 768]` |
# | `transformer.resblocks` | 12 × `ResidualAttentionBlock` | attention (12 heads of 64) + MLP (768 → 3072 → 768, QuickGELU), each added to the stream | `[B, 50, 768]` |
# | `ln_post` | `LayerNorm(768)` | normalises the **CLS token only** | `[B, 768]` |
# | `proj` | a matrix `[768, 512]` | projects into the space shared with the text encoder | `[B, 512]` |
#
# The text encoder has the same blocks at width 512 (8 heads), a causal mask (notebook 01) and a 77-token context. Your
# model's own modules:

# %% tags=["varies"]
print(visual.conv1)
print("class_embedding", tuple(visual.class_embedding.shape), "· positional_embedding", tuple(visual.positional_embedding.shape))
print(visual.transformer.resblocks[0])
print(f"... {len(visual.transformer.resblocks)} blocks in total")
print(visual.ln_post, "· proj", tuple(visual.proj.shape))

# %% [markdown]
# The three openai ViTs this course supports differ only in these numbers (read from their checkpoints):

# %% tags=["nbval-check-output"]
print(f"{'model':<9} {'patch':>5} {'grid':>5} {'tokens N':>8} {'width D':>7} {'heads':>5} {'d_head':>6} {'layers':>6} {'embed':>5}")
for name in OPENAI_VIT_MODELS:
    a = ARCHITECTURES[name]
    grid = a["image_resolution"] // a["vision_patch_size"]
    heads = a["vision_width"] // 64                      # openai's ViTs use 64-wide heads
    print(f"{name:<9} {a['vision_patch_size']:>5} {grid:>4}² {1 + grid * grid:>8} {a['vision_width']:>7} {heads:>5} "
          f"{64:>6} {a['vision_layers']:>6} {a['embed_dim']:>5}")


# %% [markdown]
# ## 2 · Patches: a convolution that is really a linear map
#
# A convolution with kernel size = stride = p never overlaps: each output position sees exactly one p × p patch. So
# `conv1` is the same as cutting the image into patches, flattening each into 3·p·p numbers, and multiplying by one
# matrix $W \in \mathbb{R}^{D \times 3p^2}$:
#
# $$\text{token}_i = W \, \text{vec}(\text{patch}_i)$$
#
# ### Exercise 1 · patchify · 🟡 medium · ~8 min
# Write `patchify(images, patch)`: `[B, 3, R, R]` → `[B, g², 3·p·p]` with `g = R / p`. Patches go in reading order (row
# by row), and inside a patch the numbers go channel, then row, then column: the order of `conv1.weight.flatten(1)`.
# <details><summary>Hint 1 · the idea</summary>
#
# Cut the image into a g × g grid of p × p patches and flatten each patch in the order `conv1.weight.flatten(1)`
# uses: channel, then row, then column.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# One `rearrange` does it. On the left, split each spatial axis into (grid position, position inside the patch); on
# the right, group the grid axes into one token axis and the channel and in-patch axes into one feature axis.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def patchify(images, patch):
    # BEGIN SOLUTION
    return rearrange(images, "b c (gh p1) (gw p2) -> b (gh gw) (c p1 p2)", p1=patch, p2=patch)
    # END SOLUTION


# %% tags=["nbval-check-output"]
patchify = check("patchify", patchify)

# %% tags=["nbval-check-output"]
p = visual.conv1.kernel_size[0]
with torch.no_grad():
    by_conv = rearrange(visual.conv1(x), "b d gh gw -> b (gh gw) d")            # [1, g², D]
    by_linear = patchify(x, p) @ visual.conv1.weight.flatten(1).T                 # [1, g², 3p²] @ [3p², D]
scale = by_conv.abs().max()
assert_same("conv1 == linear map on flattened patches (relative)", by_linear / scale, by_conv / scale)

# %% tags=["varies"]
g = info.grid
fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
axes[0].imshow(image.resize((info.image_resolution,) * 2)); axes[0].set_title(f"input, {info.image_resolution} px")
for k in range(1, g):
    for ax_line in (axes[0].axhline, axes[0].axvline):
        ax_line(k * p - 0.5, color="w", lw=0.8)
norms = by_conv[0].norm(dim=-1).view(g, g)
axes[1].imshow(norms); axes[1].set_title(f"|token| per patch ({g}×{g})")
for ax in axes: ax.axis("off")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 3 · The CLS token and positional embeddings
#
# The CLS token is a learned vector that belongs to no patch. It is prepended to the patch tokens, and after the last
# block **only the CLS token is read out**. Everything CLIP knows about the image must flow into it through attention.
#
# Attention is blind to order (shuffle the tokens and the outputs shuffle with them), so a learned
# `positional_embedding[i]` is added to token i. Notebook 01 used fixed sinusoids over a 1-D sequence. CLIP *learns*
# its embeddings, and nothing tells it the patches lie on a 2-D grid. Does it find out? For each patch, compare its
# positional embedding with every other patch's (cosine similarity), drawn on the grid:

# %% tags=["varies"]
pe = visual.positional_embedding.detach()[1:]                    # [g², D], patches only (row 0 is the CLS position)
sin = by_hand.positional_encoding(pe.shape[0] + 1, pe.shape[1])[1:]   # notebook 01's sinusoids, same size
sin = torch.as_tensor(sin, dtype=torch.float32)

def similarity_grid(e):                                          # [g², D] -> [g², g, g]
    s = F.normalize(e, dim=-1) @ F.normalize(e, dim=-1).T
    return rearrange(s, "i (gh gw) -> i gh gw", gh=g)

anchors = [0, g // 2 * g + g // 2, g * g - 1]                    # top-left, centre, bottom-right
fig, axes = plt.subplots(2, len(anchors), figsize=(2.6 * len(anchors), 5.2))
for row, (name, e) in enumerate([("learned (CLIP)", pe), ("sinusoidal (notebook 01)", sin)]):
    sims = similarity_grid(e)
    for col, a in enumerate(anchors):
        axes[row, col].imshow(sims[a], vmin=-1, vmax=1, cmap="RdBu_r"); axes[row, col].axis("off")
        axes[row, col].set_title(f"{name}\npatch ({a // g}, {a % g})", fontsize=8)
plt.tight_layout(); plt.show()


# %% [markdown]
# A number rather than a picture: the mean similarity of each patch to the patch directly **below** it and to the
# patch directly to its **right**. Sinusoids over the reading order treat "right" as one step away and "below" as g
# steps away. If the learned embeddings know the grid is 2-D, both neighbours should look alike.

# %% tags=["varies"]
def neighbour_similarity(e):
    s = F.normalize(e, dim=-1) @ F.normalize(e, dim=-1).T
    right = torch.stack([s[i, i + 1] for i in range(g * g) if i % g != g - 1]).mean()
    below = torch.stack([s[i, i + g] for i in range(g * g - g)]).mean()
    return right.item(), below.item()

for name, e in [("learned", pe), ("sinusoidal", sin)]:
    r, b = neighbour_similarity(e)
    print(f"{name:>10}: cosine to the right neighbour {r:+.2f}, to the neighbour below {b:+.2f}")


# %% [markdown]
# For openai's ViT-B/32 the learned embeddings should show clear 2-D structure (run this in real mode to see): neighbours in both directions are similar, and
# the similarity maps look like blobs around each patch (the ViT paper shows the same for its models). ToyCLIP's
# embeddings are noisier: it was trained for minutes, not weeks, and its 8 × 8 grid of 8 px patches needs less
# position information.
#
# ## 4 · One residual block, by hand
#
# Every block is *pre-norm*: normalise, transform, **add** to the stream.
#
# $$x \leftarrow x + \text{Attn}(\text{ln}_1(x)), \qquad x \leftarrow x + W_\text{proj}\,\text{QuickGELU}(W_\text{fc}\,\text{ln}_2(x) + b_\text{fc}) + b_\text{proj}$$
#
# Three details matter. PyTorch's `nn.MultiheadAttention` stores $W_q, W_k, W_v$ stacked in one `in_proj_weight`
# `[3D, D]`. CLIP's MLP uses **QuickGELU**, $x \cdot \sigma(1.702x)$, rather than exact GELU. And openai's blocks take
# tokens as `[N, B, D]` (sequence first), while this course keeps `[B, N, D]`.

# %%
from course_utils import diagrams   # the block we are about to rebuild (drawn by the course with matplotlib)
_ = diagrams.transformer_block(pre_norm=True)

# %% [markdown]
# ### Exercise 2 · quick_gelu · 🟢 easy · ~3 min
# <details><summary>Hint 1 · the idea</summary>
#
# QuickGELU gates x by a sigmoid of a scaled x: x · σ(1.702 x).
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# Elementwise only, so the shape is unchanged. `torch.sigmoid` is the σ.
# </details>


# %% jupyter={"source_hidden": true} tags=["solution"]
def quick_gelu(x):
    # BEGIN SOLUTION
    return x * torch.sigmoid(1.702 * x)
    # END SOLUTION


# %% tags=["nbval-check-output"]
quick_gelu = check("quick_gelu", quick_gelu)


# %% [markdown]
# ### Exercise 3 · multihead_self_attention · 🟡 medium · ~12 min
# `multihead_self_attention(y, in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias, n_heads)`: `y` is
# `[B, N, D]` (already normalised by ln_1). Compute q, k, v with one matrix product, split them into heads of width
# `D / n_heads`, attend (softmax of $QK^\top/\sqrt{d_\text{head}}$), concatenate the heads, apply `out_proj`.
# <details><summary>Hint 1 · the idea</summary>
#
# One projection gives q, k and v stacked; split them, split each into heads, attend per head, merge the heads,
# project out. Scale by the *head* width (notebook 01's pitfall again).
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# `in_proj_weight` is `[3D, D]`: project, then `.chunk` into three along the last axis. An einops pattern moves `(h d)` into a head axis
# `b h n d` and back. The probabilities are `[B, H, N, N]`.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def multihead_self_attention(y, in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias, n_heads):
    # BEGIN SOLUTION
    q, k, v = (y @ in_proj_weight.T + in_proj_bias).chunk(3, dim=-1)            # [B, N, D] each
    q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=n_heads) for t in (q, k, v))
    probs = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)   # [B, H, N, N]
    heads = rearrange(probs @ v, "b h n d -> b n (h d)")                       # [B, N, D]
    return heads @ out_proj_weight.T + out_proj_bias
    # END SOLUTION


# %% tags=["nbval-check-output"]
multihead_self_attention = check("multihead_self_attention", multihead_self_attention)


# %% [markdown]
# ### Exercise 4 · residual_block · 🟡 medium · ~10 min
# `residual_block(x, p, n_heads)`: the whole block. `p` is the block's `state_dict()` as a plain dict, with keys
# `ln_1.weight`, `ln_1.bias`, `attn.in_proj_weight`, `attn.in_proj_bias`, `attn.out_proj.weight`, `attn.out_proj.bias`,
# `ln_2.weight`, `ln_2.bias`, `mlp.c_fc.weight`, `mlp.c_fc.bias`, `mlp.c_proj.weight`, `mlp.c_proj.bias`. Use your two
# functions above.
# <details><summary>Hint 1 · the idea</summary>
#
# Pre-norm: normalise, transform, add to the stream. Twice: once for attention, once for the MLP.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# `F.layer_norm(x, (D,), weight, bias, eps=1e-5)` with the block's `ln_1` and `ln_2`; the MLP is `c_fc`, QuickGELU,
# `c_proj`; PyTorch stores linear weights as `[out, in]`, so multiply by their transpose.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def residual_block(x, p, n_heads):
    # BEGIN SOLUTION
    D = x.shape[-1]
    y = F.layer_norm(x, (D,), p["ln_1.weight"], p["ln_1.bias"], eps=1e-5)
    x = x + multihead_self_attention(y, p["attn.in_proj_weight"], p["attn.in_proj_bias"],
                                     p["attn.out_proj.weight"], p["attn.out_proj.bias"], n_heads)
    y = F.layer_norm(x, (D,), p["ln_2.weight"], p["ln_2.bias"], eps=1e-5)
    hidden = quick_gelu(y @ p["mlp.c_fc.weight"].T + p["mlp.c_fc.bias"])      # [B, N, 4D]
    return x + hidden @ p["mlp.c_proj.weight"].T + p["mlp.c_proj.bias"]
    # END SOLUTION


# %% tags=["nbval-check-output"]
residual_block = check("residual_block", residual_block)

# %% [markdown]
# Now on the real thing: the first and the last block of your model, fed the tokens the model itself computes.

# %% tags=["nbval-check-output"]
with torch.no_grad():
    tokens = patch_tokens(visual, x)                             # conv1, CLS, positions, ln_pre: [1, N, D]
    blocks = visual.transformer.resblocks
    for i, block in enumerate(blocks):
        theirs = block(tokens.transpose(0, 1)).transpose(0, 1)   # openai's blocks take [N, B, D]
        if i in (0, len(blocks) - 1):
            ours = residual_block(tokens, block_params(block), block.attn.num_heads)
            scale = theirs.abs().max()
            assert_same(f"{'first' if i == 0 else 'last'} block by hand vs the model (relative)", ours / scale, theirs / scale)
        tokens = theirs


# %% [markdown]
# ## 5 · Where does the CLS token look?
#
# Row 0 of each attention matrix is the CLS query: a probability distribution over all N tokens. Dropping the CLS key
# and reshaping the rest onto the grid gives one map per layer and head. `trace_vit` reruns the model with attention
# written out (as above) and keeps every block's probabilities `[B, H, N, N]`.
#
# ### Exercise 5 · cls_attention_maps · 🟢 easy · ~6 min
# `[B, H, N, N]` → `[B, H, g, g]`: the CLS query's attention to each patch.
# <details><summary>Hint 1 · the idea</summary>
#
# The CLS query's row of each attention matrix, without the CLS key, laid back on the patch grid.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# Index query 0 and keys 1 onwards to get `[B, H, g²]`; `math.isqrt` gives g; an einops pattern splits the last axis
# into `gh gw`.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def cls_attention_maps(probs):
    # BEGIN SOLUTION
    cls_row = probs[:, :, 0, 1:]                         # [B, H, g²]: CLS query, patch keys
    g = math.isqrt(cls_row.shape[-1])
    return rearrange(cls_row, "b h (gh gw) -> b h gh gw", gh=g)
    # END SOLUTION


# %% tags=["nbval-check-output"]
cls_attention_maps = check("cls_attention_maps", cls_attention_maps)

# %% tags=["varies"]
with torch.no_grad():
    trace = trace_vit(model, x)
maps = torch.stack([cls_attention_maps(a)[0] for a in trace.attn_probs])     # [L, H, g, g]
L, H = maps.shape[:2]
fig, axes = plt.subplots(L, H, figsize=(1.1 * H + 1, 1.1 * L + 0.5), squeeze=False)
for l in range(L):
    for h in range(H):
        axes[l, h].imshow(maps[l, h]); axes[l, h].set_xticks([]); axes[l, h].set_yticks([])
        if h == 0: axes[l, h].set_ylabel(f"L{l}", fontsize=8)
        if l == 0: axes[l, h].set_title(f"h{h}", fontsize=8)
plt.suptitle("CLS → patch attention, every layer (rows) and head (columns)"); plt.tight_layout(); plt.show()


# %% [markdown]
# One picture can't tell you whether later layers look at the *objects*. Measure it instead.
#
# **Predict, then run.** The toy world knows which patches are object and which are background, so it can serve as a
# measuring device for any model (the scenes are drawn at the model's own resolution). For 200 scenes, the next cell
# takes, layer by layer, the share of the CLS query's attention to patches that lands on object patches, and puts it
# next to the share of patches that are object: what attention spread evenly would give. Before you run it, write
# down: in which layers will the share rise clearly above the even spread?

# %% tags=["nbval-check-output"]
from course_utils import toyworld as tw
from course_utils.toyclip import patch_labels

scenes = tw.scenes(200, size=info.image_resolution)
patch = visual.conv1.kernel_size[0]
on_object = torch.stack([torch.from_numpy(patch_labels(s, patch) >= 0) for s in scenes])     # [200, g²] bool
with torch.no_grad():
    cls_rows = [p[:, :, 0, 1:] for p in trace_vit(model, torch.stack([preprocess(s.image) for s in scenes]),
                                                  cls_only=True).attn_probs]                 # L x [200, H, g²]
even = on_object.float().mean().item()
share = [((a * on_object[:, None]).sum(-1) / a.sum(-1)).mean().item() for a in cls_rows]    # mean over scenes, heads
print(f"patches that are object: {even:.2f} (attention spread evenly would put this share on objects)")
print("share of CLS->patch attention on object patches, by layer:", [round(s, 2) for s in share])

# %% [markdown]
# Read your numbers against the even spread: a layer whose share is close to it is not looking at the objects, one
# well above it is. Many heads also put much of their attention on the CLS token itself, which no map shows (the maps
# sum to less than 1). And attention says where information is *read from*, not what it contributes to the final
# embedding: notebook 05 measures the contribution directly.
#
# **Open task (~10 min): find a position head.** A head whose CLS attention barely changes from one image to
# the next reads *positions*, not content. `cls_rows` (from the measurement above) holds every layer's CLS-to-patch
# attention for 200 scenes. For each (layer, head), measure how much its map varies across the scenes compared with
# its average map, and name the most image-independent head in `my_position_head`. The cell after it checks your
# choice against the spread of all heads; then look at that head with the browser below.

# %%
my_position_head = None   # (layer, head)

# %% tags=["varies"]
spread = torch.stack([(a.std(dim=0) / a.mean(dim=0).clamp(min=1e-8)).mean(dim=-1) for a in cls_rows])   # [L, H]
if my_position_head is not None:
    l, h = my_position_head
    assert 0 <= l < spread.shape[0] and 0 <= h < spread.shape[1], "my_position_head: (layer, head) of this model"
    rank = int((spread < spread[l, h]).sum()) + 1
    print(f"L{l}H{h}: relative spread {spread[l, h]:.2f}; rank {rank} of {spread.numel()} (1 = most image-independent)")

# %% [markdown]
# # Pick a layer and head:

# %% tags=["varies"]
def show_head(layer=L - 1, head=0):
    m = maps[layer, head]
    fig, axes = plt.subplots(1, 2, figsize=(6.5, 3.2))
    axes[0].imshow(image.resize((info.image_resolution,) * 2))
    axes[0].imshow(F.interpolate(m[None, None], size=info.image_resolution, mode="nearest")[0, 0], alpha=0.55, cmap="inferno")
    axes[1].imshow(m, cmap="inferno")
    cls_self = trace.attn_probs[layer][0, head, 0, 0].item()
    axes[1].set_title(f"layer {layer}, head {head}: CLS→CLS {cls_self:.2f}", fontsize=9)
    for ax in axes: ax.axis("off")
    plt.tight_layout(); plt.show()

widgets.interact(show_head, layer=widgets.IntSlider(value=L - 1, min=0, max=L - 1), head=widgets.IntSlider(value=0, min=0, max=H - 1));

# %% [markdown]
# ## 6 · The end: `ln_post` and `proj`
#
# ⏩ *Skip if short on time: run these cells without stopping to discuss them; nothing later needs the discussion.*
#
# After the last block, `ln_post` normalises the CLS token alone, and `proj` maps it from width D to the shared
# embedding space (768 → 512 for ViT-B/32). The 49 patch tokens computed by the last block are thrown away.
#
# $$\text{encode\_image}(x) = \text{ln}_\text{post}\big(x_L[\text{CLS}]\big)\, W_\text{proj}$$

# %% tags=["varies"]
with torch.no_grad():
    cls_final = trace.residuals[-1][:, 0]                                # [1, D]
    mine = F.layer_norm(cls_final, (info.width,), visual.ln_post.weight, visual.ln_post.bias, eps=1e-5) @ visual.proj
    reference = model.encode_image(x)                                    # [1, embed_dim]
scale = reference.abs().max()
assert_same("ln_post(CLS) @ proj vs model.encode_image (relative)", mine / scale, reference / scale)
print(f"image embedding: {tuple(mine.shape)} ({model.course_asset.name}: embed_dim {info.embed_dim})")

# %% [markdown]
# Because the final CLS is a **sum** (the embedding, plus every attention block's output, plus every MLP's output), and
# `ln_post` is *almost* linear, the image embedding can be written as a sum of contributions from every layer, head and
# patch. That is notebook 05.
#
# ## Summary
#
# | step | shape (ViT-B/32) | checked against |
# |---|---|---|
# | patches: `conv1` = linear map on flattened patches | `[B, 3, 224, 224]` → `[B, 49, 768]` | `visual.conv1` |
# | + CLS, + positional embedding, `ln_pre` | `[B, 50, 768]` | `trace_vit` (tests) |
# | 12 × (x + attn(ln_1 x); x + mlp(ln_2 x)) | `[B, 50, 768]` | each `ResidualAttentionBlock` |
# | CLS attention maps | `[B, 12, 7, 7]` per layer | row 0 of the probabilities |
# | `ln_post(CLS) @ proj` | `[B, 512]` | `model.encode_image` |
#
# ## Quiz
# 1. Why can a convolution with kernel size = stride be replaced by a matrix product on flattened patches?
# 2. ViT-B/16 on 224 px images: how many tokens does each block process?
# 3. Your block by hand is off by a lot, but only after the MLP. What is the likely mistake?
# 4. A head's CLS map sums to 0.3. Where did the other 0.7 go?
#
# <details><summary>Answers</summary>
#
# 1. The windows don't overlap and the same weights apply to each, so each output is one fixed linear function of one
#    patch: exactly `W @ vec(patch)`.
# 2. (224 / 16)² + 1 = 197.
# 3. Exact GELU (`F.gelu`) instead of QuickGELU, or a LayerNorm with the wrong epsilon.
# 4. To the CLS token itself (the column the map drops).
# </details>
#
# ## Further reading
#
# - Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale", ICLR 2021,
#   [arXiv:2010.11929](https://arxiv.org/abs/2010.11929). This notebook follows its section 3.1 (patches, the CLS
#   token, learned position embeddings) and its analysis of position-embedding similarity.
# - Radford et al., "Learning Transferable Visual Models From Natural Language Supervision", ICML 2021,
#   [arXiv:2103.00020](https://arxiv.org/abs/2103.00020); code and weights:
#   [openai/CLIP](https://github.com/openai/CLIP): section 2.4 describes the small changes to the ViT (an extra
#   layer norm before the transformer); the repository's `clip/model.py` (`VisionTransformer`) is the code this
#   notebook opens up.
# - Hendrycks and Gimpel, "Gaussian Error Linear Units (GELUs)", 2016,
#   [arXiv:1606.08415](https://arxiv.org/abs/1606.08415): GELU, and the sigmoid approximation that CLIP's QuickGELU
#   uses.
