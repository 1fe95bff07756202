"""By hand: the transformer pieces of notebook 01, written plainly, as the references its checkers use.

Every function here is tested against the torch module that does the same thing (tests/test_by_hand.py).
Shapes: n = sequence length, m = memory (encoder) length, d = d_model, h = heads, d_k = d / h.
"""
from __future__ import annotations

import math

import torch
from einops import rearrange


def build_vocab(corpus: list[str]) -> list[str]:
    """Unique lower-case words in order of first appearance, after the special tokens.

    Taught in: notebook 01, "A corpus and its vocabulary".
    """
    vocab = ["<pad>", "<start>", "<end>"]
    for sentence in corpus:
        for word in sentence.lower().split():
            if word not in vocab:
                vocab.append(word)
    return vocab


def positional_encoding(n_pos: int, d_model: int) -> torch.Tensor:
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d)).   -> [n_pos, d_model]

    Taught in: notebook 01, "Positional encoding"; notebook 04, "The CLS token and positional embeddings".
    """
    pos = torch.arange(n_pos, dtype=torch.float32)[:, None]  # [n_pos, 1]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32)  # [ceil(d/2)]
    angle = pos / 10000 ** (two_i / d_model)  # [n_pos, ceil(d/2)]
    pe = rearrange([angle.sin(), angle.cos()], "sc n k -> n (k sc)")  # interleaved: sin, cos, sin, cos, ...
    return pe[:, :d_model]  # an odd width drops the last cosine


def softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis; subtracting the row max first keeps exp() from overflowing.

    Taught in: notebook 01, "Scaled dot-product attention (one head)".
    """
    z = x - x.max(dim=-1, keepdim=True).values
    e = torch.exp(z)
    return e / e.sum(dim=-1, keepdim=True)


def causal_mask(n: int) -> torch.Tensor:
    """Additive mask [n, n]: 0 where query i may look at key j (j <= i), -inf where j is in the future.

    Taught in: notebook 01, "Masked self-attention".
    """
    return torch.triu(torch.full((n, n), float("-inf")), diagonal=1)


def layer_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Normalise each row to mean 0, variance 1 (biased variance, like nn.LayerNorm), then scale and shift.

    Taught in: notebook 01, "Add & norm, then the feed-forward network".
    """
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * gamma + beta


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask=None) -> torch.Tensor:
    """softmax(Q Kᵀ / √d_k + mask) V, with d_k the width of the keys.   q [.., n, d_k], k/v [.., m, d_k]

    Taught in: notebook 01, "Scaled dot-product attention (one head)".
    """
    d_k = k.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # [.., n, m]
    if mask is not None:
        scores = scores + mask
    return softmax(scores) @ v  # [.., n, d_v]


def multi_head_attention(x_q, x_kv, w_q, w_k, w_v, w_o, n_heads: int, mask=None, biases=None) -> torch.Tensor:
    """Project, split into heads, attend per head, concatenate, project with W_O.

    x_q [n, d] gives the queries; x_kv [m, d] gives keys and values (x_q is x_kv for self-attention;
    in the decoder's cross-attention x_q is the decoder stream and x_kv the encoder output).
    Weights are [d, d] and multiply on the right (x @ W); `biases` is an optional (b_q, b_k, b_v, b_o).

    Taught in: notebook 01, "Multi-head attention".
    """
    b_q, b_k, b_v, b_o = biases if biases is not None else (0, 0, 0, 0)
    q = rearrange(x_q @ w_q + b_q, "n (h dk) -> h n dk", h=n_heads)
    k = rearrange(x_kv @ w_k + b_k, "m (h dk) -> h m dk", h=n_heads)
    v = rearrange(x_kv @ w_v + b_v, "m (h dk) -> h m dk", h=n_heads)
    heads = scaled_dot_product_attention(q, k, v, mask)  # [h, n, dk]
    concat = rearrange(heads, "h n dk -> n (h dk)")  # heads side by side: [n, d]
    return concat @ w_o + b_o


def cross_attention(decoder_x, encoder_out, w_q, w_k, w_v) -> torch.Tensor:
    """Single-head cross-attention: queries from the decoder, keys and values from the encoder.  -> [n_dec, d]

    Taught in: notebook 01, "Cross-attention: where the decoder reads the encoder".
    """
    return scaled_dot_product_attention(decoder_x @ w_q, encoder_out @ w_k, encoder_out @ w_v)


def feed_forward(x, w_1, b_1, w_2, b_2) -> torch.Tensor:
    """The paper's position-wise FFN: Linear -> ReLU -> Linear, applied to every row independently.

    Taught in: notebook 01, "Add & norm, then the feed-forward network".
    """
    return torch.relu(x @ w_1 + b_1) @ w_2 + b_2
