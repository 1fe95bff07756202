"""course_utils.by_hand (the checkers' references) against the torch modules that do the same thing."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from course_utils import by_hand

ATOL = 1e-5


def close(a, b):
    return torch.allclose(a, b, atol=ATOL, rtol=0)


def test_vocab_and_pe():
    assert by_hand.build_vocab(["a b a", "c b"]) == ["<pad>", "<start>", "<end>", "a", "b", "c"]
    pe = by_hand.positional_encoding(10, 6)
    assert close(pe[0], torch.tensor([0.0, 1, 0, 1, 0, 1]))
    assert math.isclose(pe[3, 2].item(), math.sin(3 / 10000 ** (2 / 6)), abs_tol=1e-6)
    assert math.isclose(pe[3, 3].item(), math.cos(3 / 10000 ** (2 / 6)), abs_tol=1e-6)
    assert by_hand.positional_encoding(4, 5).shape == (4, 5)


def test_softmax_and_mask():
    x = torch.randn(5, 7) * 50
    assert close(by_hand.softmax(x), torch.softmax(x, -1))
    assert torch.equal(by_hand.causal_mask(5), nn.Transformer.generate_square_subsequent_mask(5))


def test_layer_norm():
    x, g, b = torch.randn(4, 6), torch.randn(6), torch.randn(6)
    ln = nn.LayerNorm(6)
    with torch.no_grad():
        ln.weight.copy_(g), ln.bias.copy_(b)
    assert close(by_hand.layer_norm(x, g, b), ln(x))


def test_attention_matches_torch_with_and_without_mask():
    q, k, v = torch.randn(2, 5, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    assert close(by_hand.scaled_dot_product_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))
    assert close(by_hand.scaled_dot_product_attention(q, k, v, by_hand.causal_mask(5)),
                 F.scaled_dot_product_attention(q, k, v, is_causal=True))


def test_multi_head_attention_matches_nn_module_with_biases_and_cross_inputs():
    torch.manual_seed(0)
    d, h = 6, 2
    mha = nn.MultiheadAttention(d, h, batch_first=True)
    nn.init.normal_(mha.in_proj_bias), nn.init.normal_(mha.out_proj.bias)
    w, b = mha.in_proj_weight, mha.in_proj_bias
    x_q, x_kv = torch.randn(4, d), torch.randn(7, d)
    ours = by_hand.multi_head_attention(x_q, x_kv, w[:d].T, w[d:2 * d].T, w[2 * d:].T, mha.out_proj.weight.T, h,
                                        biases=(b[:d], b[d:2 * d], b[2 * d:], mha.out_proj.bias))
    theirs, _ = mha(x_q[None], x_kv[None], x_kv[None])
    assert close(ours, theirs[0])


def test_cross_attention_queries_from_decoder():
    dec, enc, wq, wk, wv = torch.randn(3, 6), torch.randn(8, 6), torch.randn(6, 6), torch.randn(6, 6), torch.randn(6, 6)
    out = by_hand.cross_attention(dec, enc, wq, wk, wv)
    assert out.shape == (3, 6)
    assert close(out, F.scaled_dot_product_attention(dec @ wq, enc @ wk, enc @ wv))


def test_feed_forward():
    ffn = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 6))
    x = torch.randn(5, 6)
    ours = by_hand.feed_forward(x, ffn[0].weight.T, ffn[0].bias, ffn[2].weight.T, ffn[2].bias)
    assert close(ours, ffn(x))
