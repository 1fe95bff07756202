"""The course's decomposition and TextSpan against fixtures made with the authors' own code.

tests/fixtures/make_authors_fixtures.py ran yossigandelsman/clip_text_span (its PRS hook, prs_hook.py, and its
TextSpan, replace_with_iterative_removal in compute_complete_text_set.py) on the inputs that
tests/fixtures/authors_inputs.py rebuilds here: a random ViT-B/16 with non-initial LayerNorms and biases, the
bundled ToyCLIP, random images, and synthetic head outputs. Those files say how to regenerate the fixtures.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(FIXTURES))

import authors_inputs as inputs  # noqa: E402

from course_utils.decompose import decompose, head_contributions  # noqa: E402
from course_utils.textspan import textspan  # noqa: E402

PRS = np.load(FIXTURES / "authors_prs.npz")
TEXTSPAN = json.loads((FIXTURES / "authors_textspan.json").read_text())
MODELS = {"vit_b16": inputs.vit_b16, "toyclip": inputs.toyclip}


def per_part_relative(ours: torch.Tensor, theirs: np.ndarray) -> float:
    """The largest ‖ours − theirs‖ / ‖theirs‖ over the parts (each [d] vector along the last axis)."""
    theirs = torch.from_numpy(theirs).double()
    diff = (ours.double() - theirs).norm(dim=-1)
    return float((diff / theirs.norm(dim=-1)).max())


@pytest.fixture(scope="module", params=list(MODELS))
def case(request):
    key = request.param
    model = MODELS[key]()
    x = inputs.images(model, 2, seed=0)
    assert inputs.checksum(model.visual.parameters()) == pytest.approx(float(PRS[f"{key}_weights_checksum"]), rel=1e-9), \
        "the recipe in tests/fixtures/authors_inputs.py no longer builds the weights the fixtures were made from"
    assert inputs.checksum(x) == pytest.approx(float(PRS[f"{key}_images_checksum"]), rel=1e-9)
    return key, model, x


def test_paper_convention_equals_the_authors_per_token_head_and_mlp_term(case):
    key, model, x = case
    dec = decompose(model, x, normalize=True, convention="paper")
    layers, tokens = PRS[f"{key}_attn_layers"].tolist(), PRS[f"{key}_attn_tokens"].tolist()
    ours_tokens = dec.attn[:, layers][:, :, tokens]  # [B, 3, 4, H, d]: the fixture's layers and tokens, every head
    assert per_part_relative(ours_tokens, PRS[f"{key}_attn"]) < 1e-5
    assert per_part_relative(dec.heads(), PRS[f"{key}_heads"]) < 1e-5
    assert per_part_relative(dec.mlp, PRS[f"{key}_mlp"]) < 1e-5
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(x), torch.from_numpy(PRS[f"{key}_representation"]),
                                   rtol=1e-5, atol=1e-5)
    streamed = head_contributions(model, [(x, torch.zeros(2))], normalize=True, progress=False)
    assert per_part_relative(streamed.heads, PRS[f"{key}_heads"]) < 1e-5
    assert per_part_relative(streamed.mlp, PRS[f"{key}_mlp"]) < 1e-5


def test_centred_convention_differs_from_the_authors_only_along_gamma_proj_and_beta_proj(case):
    """The other convention is a different attribution, not a bug: it disagrees with the authors per part (so the
    test above can fail), and the disagreement lies in the span of γ @ proj and β @ proj."""
    key, model, x = case
    dec = decompose(model, x, normalize=True, convention="centred")
    assert per_part_relative(dec.heads(), PRS[f"{key}_heads"]) > 1e-3
    visual = model.visual
    with torch.no_grad():
        span = torch.stack([visual.ln_post.weight @ visual.proj, visual.ln_post.bias @ visual.proj]).double()  # [2, d]
    q = torch.linalg.qr(span.T).Q  # [d, 2]
    diff = dec.heads().double() - torch.from_numpy(PRS[f"{key}_heads"]).double()
    outside = diff - diff @ q @ q.T
    assert float(outside.norm() / diff.norm()) < 1e-3


@pytest.mark.parametrize("rank", ["64", "32"])
def test_textspan_paper_convention_picks_the_authors_texts(rank):
    outputs, texts = inputs.textspan_inputs(TEXTSPAN["inputs"]["seed"])
    assert [inputs.checksum(o) for o in outputs] == pytest.approx(TEXTSPAN["checksum_outputs"], rel=1e-9)
    differs = 0
    for h, head in enumerate(outputs):
        theirs = TEXTSPAN["picks"][f"head{h}"][rank]
        assert textspan(head, texts, n_texts=TEXTSPAN["iters"], rank=int(rank)).indices == theirs, f"head{h}"
        differs += textspan(head, texts, n_texts=TEXTSPAN["iters"], rank=int(rank), convention="centred").indices != theirs
    assert differs == len(outputs)  # the centred convention is measurably another algorithm on these inputs
