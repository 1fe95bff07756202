# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
# ---

# %% [markdown]
# # 01 · The transformer, computed by hand
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/inside-clip/inside-clip/blob/main/notebooks/01_transformer_by_hand.ipynb)
#
# **What you will be able to do after this notebook**
# - turn a sentence into ids, embeddings and positional encodings, and say what each shape means;
# - compute scaled dot-product attention, multi-head attention, add & norm and the feed-forward network by hand;
# - explain the decoder: the causal mask, cross-attention (*queries from the decoder*), the final linear + softmax, greedy decoding;
# - check every one of those hand computations against the PyTorch module that does the same thing.
#
# **Expected time:** about 109 minutes at a learner's pace (47 of them on the exercises and open tasks; estimated as the instructor guide explains). Runs on any laptop CPU in seconds.
#
# **How the exercises work.** Each exercise has a header (difficulty, minutes), a hint, a code cell for you, and a checker
# cell. The checker prints ✅, or ❌ with *what* differs (`max |Δ|`, the first wrong index, or the shapes). In the
# student copy (`notebooks/exercises/`) the exercise cells are yours to fill in; in the instructor copy (`notebooks/`)
# the solutions are filled in and collapsed. A checker also returns what the cells below should use: your function
# once it passes, the course's reference until then, so a skipped exercise never stops the notebook.
#
# We use tiny matrices (6-dimensional embeddings instead of the paper's 512) so every number fits on screen. Nothing
# here is special to small sizes: the same code runs unchanged at d = 512.

# %% tags=["colab-setup"]
# Colab setup: on Colab this installs the course package (keeping Colab's torch); anywhere else it does nothing.
import sys
if "google.colab" in sys.modules:
    # !git clone -q --depth 1 -b main https://github.com/inside-clip/inside-clip /content/inside-clip
    # !pip install -q --no-deps -e /content/inside-clip openai-clip einops ftfy regex
    sys.path.insert(0, "/content/inside-clip")

# %% tags=["varies"]
# This lesson needs only torch (to check every hand computation) and the course's checkers.
import math
import torch
import torch.nn.functional as F
from torch import nn
import matplotlib.pyplot as plt
import ipywidgets as widgets
from einops import rearrange

from course_utils import by_hand
from course_utils.checks import check, assert_same
from course_utils.env import start_lesson
from course_utils.plots import show_matrix

torch.set_printoptions(precision=3, sci_mode=False)
start_lesson(seed=0, uses_assets=False)  # seeds, and prints the banner

# %% [markdown]
# ## 1 · A corpus and its vocabulary
#
# Real language models read hundreds of gigabytes of text. Ours reads three sentences:

# %% tags=["nbval-check-output"]
corpus = [
    "When you play the game of thrones",
    "you win or you die",
    "there is no middle ground",
]
words = [w for sentence in corpus for w in sentence.lower().split()]
print(f"N = {len(words)} words in the corpus")

# %% [markdown]
# The **vocabulary** is the set of distinct words: $\text{vocab\_size} = |\operatorname{set}(\text{words})|$.
# We also add three *special tokens* the decoder will need later: `<pad>` (filler), `<start>` (the signal "start
# generating now") and `<end>` ("I am done"). Each entry's position in the list is its **id**.

# %% tags=["nbval-check-output"]
vocab = ["<pad>", "<start>", "<end>"]
for w in words:
    if w not in vocab:          # keep the order of first appearance, so ids are easy to follow
        vocab.append(w)
word_to_id = {w: i for i, w in enumerate(vocab)}

assert vocab == by_hand.build_vocab(corpus)   # the course package's version agrees
print(f"vocab_size = {len(vocab)}")
print(word_to_id)

# %% [markdown]
# ## 2 · From words to ids
#
# The encoder's input is the first sentence. Notice that `you` gets the same id wherever it appears: ids name words,
# not positions. Positions come later (section 4).

# %% tags=["nbval-check-output"]
source_sentence = corpus[0]
source_ids = torch.tensor([word_to_id[w] for w in source_sentence.lower().split()])
for w, i in zip(source_sentence.lower().split(), source_ids.tolist()):
    print(f"{w:>8} -> {i}")

# %% [markdown]
# ## 3 · Embeddings: one learned vector per word
#
# An embedding table $E$ has one row per vocabulary entry and $d_{model}$ columns. Looking up a word is just taking
# its row. The values start random (here uniform in [0, 1), as in the course notes) and training moves them so that
# words used alike end up close together. The paper used $d_{model} = 512$; we use 6.

# %% tags=["nbval-check-output"]
d_model = 6
E = torch.rand(len(vocab), d_model)          # [vocab_size, d_model]
X_emb = E[source_ids]                        # [n, d_model]: one row per word of the sentence

# torch's nn.Embedding is exactly this lookup:
embedding = nn.Embedding(len(vocab), d_model)
embedding.weight.data = E.clone()
assert_same("embedding lookup by hand vs nn.Embedding", X_emb, embedding(source_ids))
source_words = source_sentence.lower().split()
show_matrix(X_emb, "word embeddings X_emb", rows=source_words)
plt.show()


# %% [markdown]
# ## 4 · Positional encoding
#
# Attention (section 5) treats its input as a *set*: shuffle the words and each word's output is shuffled the same
# way, nothing more. To let the model know the order, the paper adds a fixed vector per position:
#
# $$PE_{(pos,\,2i)} = \sin\!\left(\frac{pos}{10000^{2i/d_{model}}}\right) \qquad
#   PE_{(pos,\,2i+1)} = \cos\!\left(\frac{pos}{10000^{2i/d_{model}}}\right)$$
#
# `pos` is the position (0 for "when"), `i` indexes the *pairs* of dimensions (dims `2i` and `2i+1` share one
# frequency), and dividing the exponent by $d_{model}$ spreads the frequencies evenly on a log scale: the first pair
# turns fast, the last pair barely moves.
#
# ### Exercise 1 · positional encoding · 🟢 easy · ~8 min
# Write `positional_encoding(n_pos, d_model)` returning a `[n_pos, d_model]` tensor. It must also work for odd
# `d_model` (the last column is then a sine).
#
# <details><summary>Hint 1 · the idea</summary>
#
# Every entry is a sine or cosine of one angle, `pos / 10000^(2i/d_model)`. Compute all the angles at once, then
# decide which columns get `sin` and which get `cos`.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# Make positions a column `[n_pos, 1]` and the even dimension indices (`torch.arange` with a step) a row;
# broadcasting gives an `[n_pos, ceil(d_model/2)]` angle table. Slicing with a step of 2 selects the even or the odd
# columns. For odd `d_model` there is one fewer cosine column than sine columns.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def positional_encoding(n_pos, d_model):
    # BEGIN SOLUTION
    pos = torch.arange(n_pos, dtype=torch.float32)[:, None]          # [n_pos, 1]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32)         # [ceil(d_model / 2)]
    angle = pos / 10000 ** (two_i / d_model)                         # [n_pos, ceil(d_model / 2)]
    pe = torch.zeros(n_pos, d_model)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return pe
    # END SOLUTION


# %% tags=["nbval-check-output"]
positional_encoding = check("positional_encoding", positional_encoding)

# %% [markdown]
# Position 0 is always $[\sin 0, \cos 0, \dots] = [0, 1, 0, 1, 0, 1]$. The input to the encoder is the sum
# $X = X_{emb} + PE$: same shape, so the two can simply be added.

# %% tags=["nbval-check-output"]
n = len(source_ids)
PE = positional_encoding(n, d_model)                                  # [n, d_model]
assert_same("PE at position 0 is [0, 1, 0, 1, 0, 1]", PE[0], torch.tensor([0., 1, 0, 1, 0, 1]))
X = X_emb + PE                                                        # [n, d_model]

fig, axes = plt.subplots(1, 3, figsize=(15, 3.4))
show_matrix(X_emb, "X_emb", rows=source_words, ax=axes[0])
show_matrix(PE, "PE", rows=source_words, ax=axes[1], cmap="coolwarm")
show_matrix(X, "X = X_emb + PE", rows=source_words, ax=axes[2])
plt.tight_layout(); plt.show()


# %% [markdown]
# With only 6 dimensions the pattern is hard to see. Here it is for 50 positions × 64 dimensions: every row is a
# different "barcode", and nearby positions have similar barcodes. Move the sliders to see how `d_model` changes the
# frequencies (the plot below the widget is static, so it shows even where widgets don't render).

# %%
def plot_pe(n_pos=50, d_model=64):
    pe = positional_encoding(n_pos, d_model)
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 3.6))
    im = a.imshow(pe, cmap="coolwarm", aspect="auto")
    a.set(xlabel="dimension", ylabel="position", title=f"PE over {n_pos} positions × {d_model} dims")
    plt.colorbar(im, ax=a)
    sim = pe @ pe.T                                       # dot product of every pair of positions
    im = b.imshow(sim, cmap="viridis")
    b.set(xlabel="position", ylabel="position", title="PE(p) · PE(q): close positions look alike")
    plt.colorbar(im, ax=b)
    plt.show()

plot_pe()

# %% tags=["varies"]
widgets.interact(plot_pe, n_pos=widgets.IntSlider(50, 5, 200, 5), d_model=widgets.IntSlider(64, 4, 256, 4));

# %% [markdown]
# ## 5 · Scaled dot-product attention (one head)
#
# Each word asks a **query** ("what am I looking for?"), offers a **key** ("what do I contain?") and a **value**
# ("what I pass on if chosen"). All three are linear maps of the same $X$, with different weight matrices. The number
# of columns of $W_Q, W_K$ is our choice; like the course notes, we take $d_k = 4$.

# %%
d_k = 4
W_Q, W_K, W_V = torch.rand(d_model, d_k), torch.rand(d_model, d_k), torch.rand(d_model, d_k)   # [6, 4] each
Q, K, V = X @ W_Q, X @ W_K, X @ W_V                                                              # [7, 4] each

fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
for ax, M, name in zip(axes, (Q, K, V), "QKV"):
    show_matrix(M, name, rows=source_words, ax=ax)
plt.tight_layout(); plt.show()


# %% [markdown]
# $$\operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right) V$$
#
# Row $i$ of $QK^\top$ holds how well word $i$'s query matches every key. Softmax turns each row into weights that
# sum to 1, and the output row $i$ is the weighted average of the values.
#
# > **Common pitfall: which width goes under the square root?** The course notes divide by √6, the *embedding* width.
# > The paper divides by $\sqrt{d_k}$, the width of the **keys** (here 4; in the paper 64 = 512 / 8 heads). The reason:
# > a dot product of two $d_k$-long vectors with unit-variance entries has variance $d_k$, so dividing by
# > $\sqrt{d_k}$ brings the scores back to unit scale, whatever $d_{model}$ is. With too-large scores softmax
# > saturates to a one-hot row and its gradients vanish.
#
# ### Exercise 2 · a numerically stable softmax · 🟢 easy · ~5 min
# Write `softmax(x)` over the last axis. The checker includes a row with entries near 1000: `exp(1000)` overflows to
# `inf`, so first subtract each row's maximum (the result is mathematically unchanged; why?).
#
# <details><summary>Hint 1 · the idea</summary>
#
# softmax(x) = softmax(x − c) for any constant c per row. Which c makes every exponent ≤ 0, so nothing overflows?
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# A reduction over the last axis with `keepdim=True` keeps a `[..., 1]` shape that broadcasts back against `x`.
# Remember that `.max(dim=...)` returns values *and* indices.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def softmax(x):
    # BEGIN SOLUTION
    z = x - x.max(dim=-1, keepdim=True).values     # shifting a row does not change its softmax
    e = torch.exp(z)
    return e / e.sum(dim=-1, keepdim=True)
    # END SOLUTION


# %% tags=["nbval-check-output"]
softmax = check("softmax", softmax)


# %% [markdown]
# ### Exercise 3 · scaled dot-product attention · 🟡 medium · ~8 min
# Write `scaled_dot_product_attention(q, k, v, mask=None)`: scores $QK^\top/\sqrt{d_k}$, plus `mask` if given
# (an additive mask of 0 and −∞, used in section 8), then your `softmax`, then multiply by `v`. The checker includes
# a case with 3 queries and 5 keys, so use the right shapes (and the right $d_k$).
#
# <details><summary>Hint 1 · the idea</summary>
#
# Scores, optional mask, softmax, weighted sum of values: four steps, in that order. The scale is the *key* width.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# `q` is `[.., n_q, d_k]`, `k` is `[.., n_k, d_k]`: the scores must be `[.., n_q, n_k]`, so transpose the last two
# axes of `k` (not `.T`, which would also flip a leading head axis). Use your own `softmax`.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def scaled_dot_product_attention(q, k, v, mask=None):
    # BEGIN SOLUTION
    d_k = k.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)     # [.., n_q, n_k]
    if mask is not None:
        scores = scores + mask
    return softmax(scores) @ v                            # [.., n_q, d_v]
    # END SOLUTION


# %% tags=["nbval-check-output"]
scaled_dot_product_attention = check("scaled_dot_product_attention", scaled_dot_product_attention)

# %% [markdown]
# Now the step-by-step values for our sentence, and the same result from PyTorch's fused kernel:

# %% tags=["nbval-check-output"]
scores = Q @ K.T / math.sqrt(d_k)                     # [7, 7]
weights = softmax(scores)                             # [7, 7], rows sum to 1
head_out = weights @ V                                # [7, 4]

assert_same("attention rows sum to 1", weights.sum(-1), torch.ones(n))
assert_same("hand attention vs F.scaled_dot_product_attention", head_out, F.scaled_dot_product_attention(Q, K, V))
assert_same("your function vs the step-by-step cells", scaled_dot_product_attention(Q, K, V), head_out)

fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
show_matrix(scores, "scores = QKᵀ/√d_k", rows=source_words, cols=source_words, ax=axes[0])
show_matrix(weights, "softmax(scores): who attends to whom", rows=source_words, cols=source_words, ax=axes[1], cmap="magma")
plt.tight_layout(); plt.show()

# %% [markdown]
# Look at the right-hand plot: almost every word puts most of its weight on "when". Our weights are all positive
# (uniform in [0, 1), as in the course notes), so every score is large and positive, and softmax of large numbers is
# nearly one-hot. Real models initialise weights around zero (e.g. `nn.Linear` draws from ±1/√fan_in), which keeps
# the scores small at the start; that, and the √d_k, is what keeps early attention spread out and trainable.

# %% [markdown]
# ## 6 · Multi-head attention
#
# One head gives each word one weighted average. **Multi-head** attention runs $h$ heads side by side, each with its
# own small $W_Q^{(j)}, W_K^{(j)}, W_V^{(j)}$ of width $d_k = d_{model}/h$, so that different heads can look for
# different things. The head outputs are **concatenated** back to width $d_{model}$ and mixed by one more matrix $W_O$:
#
# $$\operatorname{MultiHead}(X) = \operatorname{Concat}(\text{head}_1, \dots, \text{head}_h)\, W_O,
# \qquad \text{head}_j = \operatorname{Attention}(X W_Q^{(j)}, X W_K^{(j)}, X W_V^{(j)})$$
#
# In practice all heads' $W_Q^{(j)}$ are stored as one $[d_{model}, d_{model}]$ matrix, whose columns are cut into $h$
# blocks. We use $h = 2$ heads of width 3. First as a loop, the way you would say it:
#
# > **Common pitfall.** The course notes give, as an example of a head count, "the 32 single-head attentions in the
# > *encoder* of Meta's LLaMA". LLaMA has no encoder: it is a decoder-only model, every layer a *masked* self-attention
# > (section 8.1) plus an FFN. Its 7B version does use 32 heads per layer, 128 wide each, in a 4096-wide stream. The
# > head count is indeed a design choice; what it is not free to change is the width the heads share, $d_k = d_{model}/h$.

# %% tags=["nbval-check-output"]
h = 2
d_head = d_model // h                                           # 3
W_Q2, W_K2, W_V2, W_O = (torch.rand(d_model, d_model) for _ in range(4))   # [6, 6] each

heads = []
for j in range(h):
    cols = slice(j * d_head, (j + 1) * d_head)                  # this head's block of columns
    q_j, k_j, v_j = X @ W_Q2[:, cols], X @ W_K2[:, cols], X @ W_V2[:, cols]   # [7, 3] each
    heads.append(scaled_dot_product_attention(q_j, k_j, v_j))  # [7, 3]
concat = torch.cat(heads, dim=-1)                               # [7, 6]
mha_by_hand = concat @ W_O                                      # [7, 6]
print("one head:", tuple(heads[0].shape), " concat:", tuple(concat.shape), " after W_O:", tuple(mha_by_hand.shape))

# %% [markdown]
# Then with **einops**, which names the axes instead of counting them: `"n (h dk) -> h n dk"` reads "split the last
# axis into h blocks of dk and move h to the front". All heads are then one batched matrix product.

# %% tags=["nbval-check-output"]
q = rearrange(X @ W_Q2, "n (h dk) -> h n dk", h=h)             # [2, 7, 3]
k = rearrange(X @ W_K2, "n (h dk) -> h n dk", h=h)
v = rearrange(X @ W_V2, "n (h dk) -> h n dk", h=h)
mha_einops = rearrange(scaled_dot_product_attention(q, k, v), "h n dk -> n (h dk)") @ W_O

# PyTorch stores the three projections stacked and transposed (it computes x @ W.T):
mha = nn.MultiheadAttention(d_model, h, bias=False, batch_first=True)
with torch.no_grad():
    mha.in_proj_weight.copy_(torch.cat([W_Q2.T, W_K2.T, W_V2.T]))     # [18, 6]
    mha.out_proj.weight.copy_(W_O.T)
torch_out, _ = mha(X[None], X[None], X[None])                      # batch of 1

assert_same("loop vs einops", mha_by_hand, mha_einops)
assert_same("hand multi-head attention vs nn.MultiheadAttention", mha_by_hand, torch_out[0])
assert_same("course_utils.by_hand.multi_head_attention agrees", by_hand.multi_head_attention(X, X, W_Q2, W_K2, W_V2, W_O, h), mha_by_hand)


# %% [markdown]
# ## 7 · Add & norm, then the feed-forward network
#
# **Add** (the residual connection): the attention output is added to its own input $X$, so a layer only has to learn
# a *change* to the stream. **Norm** (layer normalisation) then rescales each row to mean 0 and variance 1, and a
# learned per-dimension scale $\gamma$ and shift $\beta$ follow:
#
# $$\operatorname{LayerNorm}(x) = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta,
# \qquad \mu, \sigma^2 \text{ over the row's } d_{model} \text{ entries}$$
#
# The small $\epsilon$ (PyTorch: $10^{-5}$) keeps the division finite when a row is constant.

# %%
from course_utils import diagrams   # one encoder layer, as the paper draws it (drawn by the course with matplotlib)
_ = diagrams.transformer_block(pre_norm=False)

# %% [markdown]
# ### Exercise 4 · layer norm · 🟢 easy · ~6 min
# Write `layer_norm(x, gamma, beta, eps=1e-5)` and match `nn.LayerNorm`.
#
# <details><summary>Hint 1 · the idea</summary>
#
# Per row: subtract the mean, divide by the standard deviation, then scale by γ and shift by β. Two details decide
# whether you match PyTorch.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# The variance is the *biased* one (divide by d, not d − 1: `unbiased=False`), and ε goes *inside* the square root.
# Reduce over `dim=-1` with `keepdim=True` so the statistics broadcast.
# </details>


# %% jupyter={"source_hidden": true} tags=["solution"]
def layer_norm(x, gamma, beta, eps=1e-5):
    # BEGIN SOLUTION
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * gamma + beta
    # END SOLUTION


# %% tags=["nbval-check-output"]
layer_norm = check("layer_norm", layer_norm)

# %% tags=["nbval-check-output"]
gamma, beta = torch.ones(d_model), torch.zeros(d_model)        # what nn.LayerNorm starts with
added = X + mha_by_hand                                         # Add
normed = layer_norm(added, gamma, beta)                         # & Norm
assert_same("hand add & norm vs nn.LayerNorm", normed, nn.LayerNorm(d_model)(added))
assert_same("each row now has mean 0", normed.mean(-1), torch.zeros(n))

# %% [markdown]
# The **feed-forward network** is applied to every row (position) on its own, with the same weights:
#
# $$\operatorname{FFN}(x) = \max(0,\; x W_1 + b_1)\, W_2 + b_2$$
#
# That is Linear → ReLU → Linear, with a wider hidden layer ($d_{ff}$ = 2048 in the paper, 8 here). A second add & norm
# follows. This completes one encoder layer.
#
# > **Common pitfall.** The course notes describe this step as "a linear layer and a ReLU". The paper's FFN has *two*
# > linear layers around the ReLU: the first widens each row to $d_{ff}$, the second brings it back to $d_{model}$. The
# > second one is not optional: without it the output would be $d_{ff}$ wide and could not be added back to the stream.

# %% tags=["nbval-check-output"]
d_ff = 8
W_1, b_1, W_2, b_2 = torch.rand(d_model, d_ff), torch.rand(d_ff), torch.rand(d_ff, d_model), torch.rand(d_model)
ffn_by_hand = torch.relu(normed @ W_1 + b_1) @ W_2 + b_2        # [7, 6]

ffn = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))
with torch.no_grad():
    ffn[0].weight.copy_(W_1.T); ffn[0].bias.copy_(b_1)
    ffn[2].weight.copy_(W_2.T); ffn[2].bias.copy_(b_2)
assert_same("hand FFN vs Linear -> ReLU -> Linear", ffn_by_hand, ffn(normed))
encoder_out_by_hand = layer_norm(normed + ffn_by_hand, gamma, beta)


# %% [markdown]
# ### The whole encoder layer against `nn.TransformerEncoderLayer`
#
# ⏩ *Skip if short on time: run these cells without stopping to discuss them; nothing later needs the discussion.*
#
# Now we let PyTorch create an encoder layer with its own random weights, read those weights out, and redo the whole
# layer with *our* functions. If every piece above is right, the two agree.

# %% tags=["nbval-check-output"]
def attention_weights(mha_module):
    """W_Q, W_K, W_V, W_O and biases of an nn.MultiheadAttention, in our x @ W convention."""
    d = mha_module.embed_dim
    w, b = mha_module.in_proj_weight, mha_module.in_proj_bias
    return dict(w_q=w[:d].T, w_k=w[d:2*d].T, w_v=w[2*d:].T, w_o=mha_module.out_proj.weight.T,
                biases=(b[:d], b[d:2*d], b[2*d:], mha_module.out_proj.bias))

def mha_by_hand_fn(x_q, x_kv, p, n_heads, mask=None):
    b_q, b_k, b_v, b_o = p["biases"]
    q = rearrange(x_q @ p["w_q"] + b_q, "n (h dk) -> h n dk", h=n_heads)
    k = rearrange(x_kv @ p["w_k"] + b_k, "m (h dk) -> h m dk", h=n_heads)
    v = rearrange(x_kv @ p["w_v"] + b_v, "m (h dk) -> h m dk", h=n_heads)
    return rearrange(scaled_dot_product_attention(q, k, v, mask), "h n dk -> n (h dk)") @ p["w_o"] + b_o

def ffn_by_hand_fn(x, layer):
    return torch.relu(x @ layer.linear1.weight.T + layer.linear1.bias) @ layer.linear2.weight.T + layer.linear2.bias

def encoder_layer_by_hand(x, layer):
    x = layer_norm(x + mha_by_hand_fn(x, x, attention_weights(layer.self_attn), layer.self_attn.num_heads),
                   layer.norm1.weight, layer.norm1.bias, layer.norm1.eps)
    return layer_norm(x + ffn_by_hand_fn(x, layer), layer.norm2.weight, layer.norm2.bias, layer.norm2.eps)

torch.manual_seed(1)
enc_layer = nn.TransformerEncoderLayer(d_model, nhead=2, dim_feedforward=d_ff, dropout=0.0, batch_first=True).eval()
with torch.no_grad():
    memory_by_hand = encoder_layer_by_hand(X, enc_layer)           # [7, 6]
    assert_same("hand encoder layer vs nn.TransformerEncoderLayer", memory_by_hand, enc_layer(X[None])[0])


# %% [markdown]
# ## 8 · The decoder
#
# The decoder writes the output sentence one token at a time. During training it sees the whole target, shifted
# right behind `<start>`, and must predict each next token:
#
# | position | 0 | 1 | 2 | 3 | 4 | 5 |
# |---|---|---|---|---|---|---|
# | decoder input | `<start>` | you | win | or | you | die |
# | should predict | you | win | or | you | die | `<end>` |
#
# ### 8.1 Masked self-attention
# When predicting position 2, the decoder must not peek at positions 3, 4, 5: at generation time those don't exist
# yet. A **causal mask** adds $-\infty$ to the scores of future positions before the softmax, so their weights
# become exactly 0.
#
# > **Common pitfall.** The course notes say the mask "helps prevent overfitting". It is not a regulariser. In training
# > the decoder sees the whole target at once; without the mask, position $i$ could simply copy word $i+1$ from its
# > input and the loss would drop to zero while the model learned nothing it can use at generation time, when word
# > $i+1$ does not exist yet. The mask prevents that *leak*. What fights overfitting in the paper is dropout (0.1) and
# > label smoothing.
#
# ### Exercise 5 · causal mask · 🟢 easy · ~4 min
# Write `causal_mask(n)`: an `[n, n]` float tensor with 0 where key $j \le$ query $i$ and `-inf` where $j > i$.
#
# <details><summary>Hint 1 · the idea</summary>
#
# Query i may read keys 0..i. Everything strictly above the diagonal is the future and must become −∞; the rest 0.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# Start from an `[n, n]` tensor full of `-inf` (`torch.full`); one of `torch.triu` / `torch.tril`, with the right
# `diagonal`, keeps exactly the part above the diagonal.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def causal_mask(n):
    # BEGIN SOLUTION
    return torch.triu(torch.full((n, n), float("-inf")), diagonal=1)
    # END SOLUTION


# %% tags=["nbval-check-output"]
causal_mask = check("causal_mask", causal_mask)

# %% tags=["nbval-check-output"]
target_words = ["<start>"] + corpus[1].split()                 # decoder input, 6 tokens
target_ids = torch.tensor([word_to_id[w] for w in target_words])
Y = E[target_ids] + positional_encoding(len(target_ids), d_model)   # [6, 6]
mask = causal_mask(len(target_ids))

assert_same("our mask equals nn.Transformer.generate_square_subsequent_mask", mask,
            nn.Transformer.generate_square_subsequent_mask(len(target_ids)))
masked_weights = softmax(Y @ Y.T / math.sqrt(d_model) + mask)    # Q = K = Y here, just to see the pattern
assert_same("no weight on future positions", masked_weights.triu(1), torch.zeros(6, 6))

fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
show_matrix(mask, "causal mask", rows=target_words, cols=target_words, ax=axes[0], cmap="Greys")
show_matrix(masked_weights, "masked attention weights", rows=target_words, cols=target_words, ax=axes[1], cmap="magma")
plt.tight_layout(); plt.show()


# %% [markdown]
# ### 8.2 Cross-attention: where the decoder reads the encoder
#
# After masked self-attention and an add & norm, the decoder attends to the **encoder output** ("memory"). Each
# decoder position asks a question about the source sentence, so:
#
# - **queries** come from the **decoder** stream (one per target token),
# - **keys and values** come from the **encoder** output (one per source token).
#
# The output has one row per *decoder* token: each is a mix of source-token values.
#
# > **Common pitfall.** The course notes say the encoder output gives the query and the key, and the value comes from
# > the decoder. Easy to mix up, and worth checking with shapes: the weights matrix is
# > $[n_{queries}, n_{keys}]$ and multiplies the values, so keys and values must come from the same sequence, and the
# > output has as many rows as there are queries. With 6 target tokens and 7 source tokens, the notes' version
# > would try to multiply a $[7, 7]$ weight matrix by $[6, d]$ decoder values, which fails. Queries from the decoder,
# > keys and values from the encoder: the decoder asks, the source answers.
#
# ### Exercise 6 · cross-attention · 🟡 medium · ~6 min
# Write single-head `cross_attention(decoder_x, encoder_out, w_q, w_k, w_v)` using your
# `scaled_dot_product_attention`. The checker uses 4 decoder tokens and 7 encoder tokens.
#
# <details><summary>Hint 1 · the idea</summary>
#
# The decoder asks (queries); the encoder answers (keys and values). Project, then reuse your attention.
# </details>
# <details><summary>Hint 2 · shapes and functions</summary>
#
# With 4 decoder and 7 encoder tokens, the weights are `[4, 7]` and the result has 4 rows. Each projection is one
# matrix product with its weight.
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
def cross_attention(decoder_x, encoder_out, w_q, w_k, w_v):
    # BEGIN SOLUTION
    q = decoder_x @ w_q          # [n_dec, d]: the decoder asks
    k = encoder_out @ w_k        # [n_enc, d]: the source answers ...
    v = encoder_out @ w_v        # [n_enc, d]: ... and passes on its values
    return scaled_dot_product_attention(q, k, v)
    # END SOLUTION


# %% tags=["nbval-check-output"]
cross_attention = check("cross_attention", cross_attention)


# %% [markdown]
# ### 8.3 The whole decoder layer against `nn.TransformerDecoderLayer`
#
# ⏩ *Skip if short on time: run these cells without stopping to discuss them; nothing later needs the discussion.*
#
# Masked self-attention → add & norm → cross-attention (queries from the decoder, keys/values from the encoder) →
# add & norm → FFN → add & norm. Three sub-layers, three norms:

# %% tags=["nbval-check-output"]
def decoder_layer_by_hand(y, memory, layer):
    n_heads = layer.self_attn.num_heads
    y = layer_norm(y + mha_by_hand_fn(y, y, attention_weights(layer.self_attn), n_heads, causal_mask(len(y))),
                   layer.norm1.weight, layer.norm1.bias, layer.norm1.eps)
    #               queries from the decoder ↓   keys & values from the encoder ↓
    y = layer_norm(y + mha_by_hand_fn(y, memory, attention_weights(layer.multihead_attn), n_heads),
                   layer.norm2.weight, layer.norm2.bias, layer.norm2.eps)
    return layer_norm(y + ffn_by_hand_fn(y, layer), layer.norm3.weight, layer.norm3.bias, layer.norm3.eps)

dec_layer = nn.TransformerDecoderLayer(d_model, nhead=2, dim_feedforward=d_ff, dropout=0.0, batch_first=True).eval()
with torch.no_grad():
    dec_by_hand = decoder_layer_by_hand(Y, memory_by_hand, dec_layer)                      # [6, 6]
    dec_torch = dec_layer(Y[None], memory_by_hand[None], tgt_mask=causal_mask(len(Y)))[0]
assert_same("hand decoder layer vs nn.TransformerDecoderLayer", dec_by_hand, dec_torch)

# %% [markdown]
# ## 9 · From vectors to words: the final linear layer and softmax
#
# One linear layer maps every decoder row ($d_{model}$ numbers) to one score per vocabulary word (**logits**), and a
# softmax turns each row's logits into probabilities. The prediction at each position is the most probable word.
#
# > **Common pitfall.** The course notes flatten the whole output matrix into one long vector before the linear layer.
# > The real model applies the **same** linear layer to **each row** separately: row $i$ predicts token $i+1$. That
# > is why one set of weights works for sentences of any length.

# %% tags=["nbval-check-output"]
W_vocab = torch.rand(d_model, len(vocab))                 # [6, vocab_size]
logits = dec_by_hand @ W_vocab                            # [6, vocab_size]: one row of scores per position
probs = softmax(logits)
assert_same("hand softmax vs torch.softmax", probs, torch.softmax(logits, dim=-1))
predicted = [vocab[i] for i in probs.argmax(-1).tolist()]
print("untrained predictions:", predicted)
show_matrix(probs, "p(next word) per position (untrained)", rows=target_words, cols=vocab, annotate=False)
plt.show()


# %% [markdown]
# ## 10 · Putting it together: train for one second, then decode greedily
#
# With random weights the predictions are noise. Let's assemble the pieces into a tiny model made of PyTorch's own
# layers (one encoder layer, one decoder layer, $d_{model} = 6$), teach it two sentence pairs for a second, and then
# generate with a **greedy loop**: start from `<start>`, append the most probable next token, repeat until `<end>`.

# %% tags=["nbval-check-output"]
class TinyTransformer(nn.Module):
    def __init__(self, vocab_size, d_model=6, n_heads=2, d_ff=8, max_len=32):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.encoder = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout=0.0, batch_first=True)
        self.decoder = nn.TransformerDecoderLayer(d_model, n_heads, d_ff, dropout=0.0, batch_first=True)
        self.to_vocab = nn.Linear(d_model, vocab_size)
        self.register_buffer("pe", positional_encoding(max_len, d_model))

    def encode(self, src_ids):                      # [B, n_src] -> [B, n_src, d]
        return self.encoder(self.embed(src_ids) + self.pe[: src_ids.shape[1]])

    def decode(self, tgt_ids, memory):              # [B, n_tgt] -> logits [B, n_tgt, vocab]
        n = tgt_ids.shape[1]
        y = self.decoder(self.embed(tgt_ids) + self.pe[:n], memory, tgt_mask=causal_mask(n))
        return self.to_vocab(y)

def ids(sentence):
    return [word_to_id[w] for w in sentence.lower().split()]

pairs = [(corpus[0], corpus[1]), (corpus[1], corpus[2])]     # "when you play ..." -> "you win or you die" -> ...

def greedy_decode(model, sentence, max_len=10):
    model.eval()
    with torch.no_grad():
        memory = model.encode(torch.tensor([ids(sentence)]))
        out = [word_to_id["<start>"]]
        for _ in range(max_len):
            next_id = int(model.decode(torch.tensor([out]), memory)[0, -1].argmax())
            out.append(next_id)
            if next_id == word_to_id["<end>"]:
                break
    return " ".join(vocab[i] for i in out)

torch.manual_seed(0)
model = TinyTransformer(len(vocab))
untrained = greedy_decode(model, corpus[0])
assert untrained != "<start> you win or you die <end>"
print("before training:", untrained)

# %%
optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
losses = []
model.train()
for step in range(150):
    loss = 0.0
    for src, tgt in pairs:
        tgt_ids = [word_to_id["<start>"]] + ids(tgt) + [word_to_id["<end>"]]
        logits = model.decode(torch.tensor([tgt_ids[:-1]]), model.encode(torch.tensor([ids(src)])))
        loss = loss + F.cross_entropy(logits[0], torch.tensor(tgt_ids[1:]))   # predict each next token
    optimizer.zero_grad(); loss.backward(); optimizer.step()
    losses.append(loss.item())
assert losses[-1] < 0.1 * losses[0], "the loss should fall by at least 10x"
plt.figure(figsize=(5, 2.5)); plt.plot(losses); plt.yscale("log")
plt.xlabel("step"); plt.ylabel("cross-entropy"); plt.title("training loss"); plt.show()

# %% tags=["nbval-check-output"]
for src, tgt in pairs:
    print(f"{src!r:40} -> {greedy_decode(model, src)}")
    assert greedy_decode(model, src) == f"<start> {tgt} <end>"


# %% [markdown]
# Finally, the same greedy loop with **every step by hand**: our encoder layer, our decoder layer, our final linear and
# softmax, reading the trained model's weights. It must pick the same tokens with the same probabilities.

# %% tags=["nbval-check-output"]
def greedy_decode_by_hand(model, sentence, max_len=10):
    with torch.no_grad():
        src = torch.tensor(ids(sentence))
        memory = encoder_layer_by_hand(model.embed.weight[src] + positional_encoding(len(src), d_model), model.encoder)
        out = [word_to_id["<start>"]]
        for _ in range(max_len):
            y = model.embed.weight[torch.tensor(out)] + positional_encoding(len(out), d_model)
            logits = decoder_layer_by_hand(y, memory, model.decoder) @ model.to_vocab.weight.T + model.to_vocab.bias
            p = softmax(logits[-1])                               # only the last row predicts the next token
            p_torch = torch.softmax(model.decode(torch.tensor([out]), model.encode(src[None]))[0, -1], -1)
            assert (p - p_torch).abs().max() < 1e-5, "hand and torch probabilities differ"
            out.append(int(p.argmax()))
            if out[-1] == word_to_id["<end>"]:
                break
    return " ".join(vocab[i] for i in out)

model.eval()
for src, _ in pairs:
    assert greedy_decode_by_hand(model, src) == greedy_decode(model, src)
print("✅ greedy decoding by hand picks the same tokens as the torch model, step by step (probabilities within 1e-05)")

# %% [markdown]
# ## 11 · Your turn: predict, then explore
#
# **Predict, then run.** Section 4 said that attention treats its input as a *set*. Take five random word vectors,
# shuffle them, and attend. Before running, choose: the outputs are (a) unchanged, (b) shuffled the same way as the
# input, or (c) different altogether? And once positional encoding is added before attending?

# %% tags=["nbval-check-output"]
g = torch.Generator().manual_seed(0)
five = torch.randn(5, d_model, generator=g)                     # [5, 6]: five words, no positions
order = torch.tensor([3, 0, 4, 1, 2])                           # a shuffle of them


def attend(x):                                                  # self-attention: q = k = v = x
    return scaled_dot_product_attention(x, x, x)


pe5 = positional_encoding(5, d_model)
print("without positions, shuffled the same way:", torch.allclose(attend(five[order]), attend(five)[order], atol=1e-6))
print("with positions,    shuffled the same way:",
      torch.allclose(attend(five[order] + pe5), attend(five + pe5)[order], atol=1e-6))

# %% [markdown]
# Without positions the output rows just move with the input rows: nothing in the computation knows where a word
# stood. With positions added, a word's vector depends on where it is, and the outputs change.
#
# **Open task (~10 min): why √d_k?** Take one query and 50 keys whose entries have variance 1, for key widths
# $d_k$ = 4, 16, 64, 256. Compute the entropy of the softmax row (a measure of how spread out the weights are; at most
# $\ln 50 \approx 3.9$) with the scale $1/\sqrt{d_k}$ and without it. Change the starter below, then write one sentence:
# what happens without the scale as $d_k$ grows, and why would that stop a model from learning?

# %%
def row_entropy(scores):                                       # scores [50] -> entropy of softmax(scores)
    p = softmax(scores[None])[0]
    return float(-(p * torch.log(p.clamp(min=1e-12))).sum())


g = torch.Generator().manual_seed(1)
for d_k in (4, 16, 64, 256):                                   # try other widths too
    q, k = torch.randn(1, d_k, generator=g), torch.randn(50, d_k, generator=g)
    scaled, raw = row_entropy((q @ k.T)[0] / math.sqrt(d_k)), row_entropy((q @ k.T)[0])
    assert 0 <= raw <= math.log(50) + 1e-6 and 0 <= scaled <= math.log(50) + 1e-6   # a sanity check of the measure
    print(f"d_k = {d_k:>3}: entropy with 1/sqrt(d_k) {scaled:.2f}, without {raw:.2f}")

# %% [markdown]
# ## Summary
#
# | step | shape here | what it does |
# |---|---|---|
# | ids → embeddings | `[7] → [7, 6]` | one learned row per word |
# | + positional encoding | `[7, 6]` | sin/cos barcode per position, so order is visible |
# | Q, K, V | `[7, 4]` each | three linear views of the same rows |
# | softmax(QKᵀ/√d_k)V | `[7, 7] → [7, 4]` | each row becomes a weighted mix of value rows; √d_k is the **key** width |
# | multi-head | `h × [7, 3] → concat [7, 6] → W_O` | several heads look for different things |
# | add & norm | `[7, 6]` | residual + per-row normalisation (biased variance, ε inside the root) |
# | FFN | `[7, 6] → [7, 8] → [7, 6]` | Linear → ReLU → Linear, per row |
# | causal mask | `[6, 6]` | −∞ above the diagonal: no peeking at future tokens |
# | cross-attention | `Q [6,·], K,V [7,·] → [6,·]` | **queries from the decoder**, keys and values from the encoder |
# | final linear + softmax | `[6, 6] → [6, vocab]` | per row, next-token probabilities |
#
# Every one of these was checked against PyTorch within 1e-5. Next, in **02**, the same attention blocks become
# CLIP's two encoders, trained so that an image and its caption land on the same vector.
#
# ## Quick quiz
# 1. Why does the model need positional encodings at all?
# 2. You double `d_model` but keep 8 heads. What happens to the scaling factor $\sqrt{d_k}$?
# 3. In cross-attention with 5 target tokens and 9 source tokens, what is the shape of the attention-weights matrix?
# 4. What would happen at generation time if the decoder had been trained without the causal mask?
#
# <details><summary>Answers</summary>
#
# 1. Attention is permutation-equivariant: without position information, "you win or you die" and "you die or you
#    win" give the same set of outputs.
# 2. $d_k = d_{model}/8$ doubles, so the scores are divided by $\sqrt{2}$ times more.
# 3. $[5, 9]$: one row per query (decoder token), one column per key (source token).
# 4. During training it would have learned to copy the next token from the (visible) future. At generation time the
#    future isn't there, so its predictions would collapse.
# </details>
#
# ## Further reading
#
# - Vaswani et al., "Attention Is All You Need", NeurIPS 2017, [arXiv:1706.03762](https://arxiv.org/abs/1706.03762).
#   This notebook follows its section 3: the encoder and decoder stacks (3.1), scaled dot-product and multi-head
#   attention (3.2), the position-wise feed-forward network (3.3), embeddings and softmax (3.4) and positional
#   encoding (3.5).
# - Ba, Kiros and Hinton, "Layer Normalization", 2016, [arXiv:1607.06450](https://arxiv.org/abs/1607.06450): the
#   norm of add & norm.
# - PyTorch's `nn.TransformerEncoderLayer` and `nn.TransformerDecoderLayer`, the modules every hand computation here
#   is checked against: [documentation](https://pytorch.org/docs/stable/nn.html#transformer-layers).
