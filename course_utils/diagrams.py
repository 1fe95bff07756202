"""Diagrams the course draws itself, with matplotlib: boxes, arrows and words, nothing downloaded.

    transformer_block      one encoder layer: post-norm (the 2017 paper) or pre-norm (CLIP's ViT)
    dual_encoder           CLIP: two towers, one space, a B x B similarity matrix
    decomposition_tree     the image embedding split into layers -> heads -> tokens (+ MLPs)
    legrad_pipeline        LeGrad's steps for one block, then the sum over blocks
"""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

COLOURS = dict(data="#e8eef7", attention="#fde2c8", mlp="#d9f0d3", norm="#eeeeee", out="#f6d5e5", text="#fff3b0")


def _canvas(width: float, height: float, title: str):
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    ax.set_title(title, fontsize=10, loc="left")
    return fig, ax


def _box(ax, x: float, y: float, text: str, kind: str = "data", w: float = 2.2, h: float = 0.5, size: int = 8):
    """A rounded box centred at (x, y); returns its centre and half sizes for arrows."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.03", fc=COLOURS[kind],
                                ec="#555555", lw=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=size)
    return (x, y, w / 2, h / 2)


def _arrow(ax, a, b, text: str = "", rad: float = 0.0, vertical: bool = False):
    """An arrow from box a to box b (boxes as returned by _box), leaving and entering at their edges (top and bottom
    when `vertical` or when the boxes are mostly above one another, else the sides)."""
    (xa, ya, wa, ha), (xb, yb, wb, hb) = a, b
    if vertical or abs(yb - ya) >= abs(xb - xa):
        start, end = (xa, ya + (ha if yb > ya else -ha)), (xb, yb - (hb if yb > ya else -hb))
    else:
        start, end = (xa + (wa if xb > xa else -wa), ya), (xb - (wb if xb > xa else -wb), yb)
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10, lw=0.9, color="#333333",
                                 connectionstyle=f"arc3,rad={rad}"))
    if text:
        ax.text((start[0] + end[0]) / 2 + 0.08, (start[1] + end[1]) / 2, text, fontsize=7, color="#333333")


def _skip(ax, start, lane_x: float, end):
    """The residual path: from `start` left to a lane at lane_x, up the lane, then right into `end` (x, y points)."""
    ax.plot([start[0], lane_x, lane_x], [start[1], start[1], end[1]], color="#1f77b4", lw=1.0)
    ax.add_patch(FancyArrowPatch((lane_x, end[1]), end, arrowstyle="-|>", mutation_scale=10, lw=1.0, color="#1f77b4"))


def transformer_block(pre_norm: bool = False):
    """One encoder layer, bottom to top. post-norm (pre_norm=False): sub-layer, add, then norm, as in the 2017 paper;
    pre-norm: norm, sub-layer, then add to the stream, as in CLIP's ViT.

    Taught in: notebook 01, "Add & norm, then the feed-forward network"; notebook 04, "One residual block, by hand".
    """
    title = ("CLIP's ViT block (pre-norm): x ← x + Attn(ln_1(x)); x ← x + MLP(ln_2(x))" if pre_norm
             else "A transformer encoder layer (post-norm, 2017): x ← LN(x + Attn(x)); x ← LN(x + FFN(x))")
    fig, ax = _canvas(7.6, 6.4, title)
    x_in = _box(ax, 2.5, 0.5, "x  [N, D]")
    if pre_norm:
        n1 = _box(ax, 2.5, 1.5, "ln_1", "norm", w=1.4)
        att = _box(ax, 2.5, 2.4, "multi-head attention", "attention")
        add1 = _box(ax, 2.5, 3.3, "+", "data", w=0.6)
        n2 = _box(ax, 2.5, 4.2, "ln_2", "norm", w=1.4)
        mlp = _box(ax, 2.5, 5.0, "MLP: c_fc → QuickGELU → c_proj", "mlp", w=3.4)
        add2 = _box(ax, 2.5, 5.9, "+  → next block", "data", w=1.8)
        for a, b in ((x_in, n1), (n1, att), (att, add1), (add1, n2), (n2, mlp), (mlp, add2)):
            _arrow(ax, a, b)
        _skip(ax, (1.4, 0.5), 0.9, (2.2, 3.22))
        _skip(ax, (2.2, 3.42), 0.5, (1.6, 5.9))
    else:
        att = _box(ax, 2.5, 1.6, "multi-head attention", "attention")
        add1 = _box(ax, 2.5, 2.6, "add & norm", "norm")
        ffn = _box(ax, 2.5, 3.8, "FFN: Linear → ReLU → Linear", "mlp", w=3.2)
        add2 = _box(ax, 2.5, 4.8, "add & norm", "norm")
        out = _box(ax, 2.5, 5.8, "next layer  [N, D]")
        for a, b in ((x_in, att), (att, add1), (add1, ffn), (ffn, add2), (add2, out)):
            _arrow(ax, a, b)
        _skip(ax, (1.4, 0.5), 0.9, (1.4, 2.5))
        _skip(ax, (1.4, 2.72), 0.5, (1.4, 4.8))
    ax.text(4.6, 0.5, "blue: the residual path\n(the input skips the sub-layer\nand is added back)", fontsize=7,
            color="#1f77b4", va="center")
    return fig


def dual_encoder():
    """CLIP: an image tower and a text tower, each projected into one space; a batch gives a B x B cosine matrix
    whose diagonal holds the true pairs.

    Taught in: notebook 02, "Two encoders, one space".
    """
    fig, ax = _canvas(8.0, 4.6, "CLIP: two encoders, one space, a symmetric loss over the batch")
    img = _box(ax, 1.2, 3.6, "B images", "data", w=1.6)
    txt = _box(ax, 1.2, 1.0, "B captions", "text", w=1.6)
    ie = _box(ax, 3.3, 3.6, "image encoder\n(ViT: CLS token)", "attention", w=2.0, h=0.75)
    te = _box(ax, 3.3, 1.0, "text encoder\n(transformer: EOT token)", "attention", w=2.0, h=0.75)
    ip = _box(ax, 5.2, 3.6, "proj → unit\n[B, d]", "norm", w=1.4, h=0.75)
    tp = _box(ax, 5.2, 1.0, "proj → unit\n[B, d]", "norm", w=1.4, h=0.75)
    sim = _box(ax, 6.9, 2.3, "e^t · I Tᵀ\n[B, B] logits", "out", w=1.7, h=0.8)
    loss = _box(ax, 6.9, 0.6, "cross-entropy\nrows + columns, / 2", "out", w=1.7, h=0.7)
    for a, b in ((img, ie), (txt, te), (ie, ip), (te, tp), (ip, sim), (tp, sim), (sim, loss)):
        _arrow(ax, a, b)
    ax.text(6.1, 3.5, "diagonal = true pairs", fontsize=7)
    return fig


def decomposition_tree(layers: int = 3, heads: int = 3, tokens: int = 3):
    """The image embedding as a sum: an embedding term, and per layer an attention part (heads, each a sum over source
    tokens) and an MLP part. Drawn small; the real model has L x H x N attention leaves.

    Taught in: notebook 05, "Heads and source tokens".
    """
    fig, ax = _canvas(9.0, 5.0, "The image embedding = embedding term + Σ_layers [ Σ_heads Σ_tokens attention terms + MLP ]")
    root = _box(ax, 4.5, 4.4, "image embedding  [d]", "out", w=2.6)
    emb = _box(ax, 0.9, 3.2, "embedding\nterm", "norm", w=1.3, h=0.7)
    _arrow(ax, root, emb, vertical=True)
    xs = [2.9 + 2.4 * i for i in range(layers)]
    for i, x in enumerate(xs):
        name = f"layer {i}" if i < layers - 1 else "layer L−1"
        lay = _box(ax, x, 3.2, name, "data", w=1.5)
        _arrow(ax, root, lay, vertical=True)
        att = _box(ax, x - 0.55, 2.2, "attention", "attention", w=1.0, h=0.45, size=7)
        mlp = _box(ax, x + 0.65, 2.2, "MLP", "mlp", w=0.7, h=0.45, size=7)
        _arrow(ax, lay, att, vertical=True)
        _arrow(ax, lay, mlp, vertical=True)
        if i == layers - 1:  # one attention part opened up: heads, then tokens
            for h in range(heads):
                hx = x - 1.5 + 0.75 * h
                head = _box(ax, hx, 1.3, f"head {h}", "attention", w=0.65, h=0.4, size=6)
                _arrow(ax, att, head, vertical=True)
                if h == 0:
                    for t in range(tokens):
                        tok = _box(ax, hx - 0.7 + 0.55 * t, 0.4, f"tok {t}", "data", w=0.5, h=0.35, size=6)
                        _arrow(ax, head, tok, vertical=True)
    ax.text(0.2, 0.4, "each leaf: p(CLS→token) · value · W_O,h, then the\nlinearised ln_post and proj (notebook 05)",
            fontsize=7)
    return fig


def legrad_pipeline():
    """LeGrad for one prompt: per chosen block, read the block as an embedding, score it against the text,
    differentiate the score with respect to that block's attention, keep the positive part; sum over blocks.

    Taught in: notebook 08, "LeGrad, step by step".
    """
    fig, ax = _canvas(9.5, 3.6, "LeGrad: one block l (repeat for each chosen block, then sum the maps)")
    steps = [("block l output\n[N, D]", "data"), ("mean over\nall tokens", "norm"), ("ln_post → proj\n→ unit: s_l", "norm"),
             ("score\ns_l · t", "text"), ("∂ score / ∂ A_l\n[H, N, N]", "attention"),
             ("ReLU, mean over\nheads & queries", "attention"), ("drop CLS key\n→ [N−1] map", "out")]
    boxes = [_box(ax, 0.75 + 1.35 * i, 2.4, text, kind, w=1.2, h=0.8, size=7) for i, (text, kind) in enumerate(steps)]
    for a, b in zip(boxes, boxes[1:]):
        _arrow(ax, a, b)
    total = _box(ax, 5.5, 0.8, "Σ over chosen blocks → min-max to [0, 1] → upsample to the image", "out", w=5.6, h=0.5)
    _arrow(ax, boxes[-1], total)
    ax.text(0.2, 1.2, "t: the prompt's unit\ntext embedding", fontsize=7)
    return fig
