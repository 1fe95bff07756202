"""The course's own diagrams draw what their titles promise (and nothing is fetched to draw them)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from course_utils import diagrams  # noqa: E402


def words(fig) -> str:
    ax = fig.axes[0]
    return " ".join([t.get_text() for t in ax.texts] + [ax.get_title(loc="left")])


@pytest.mark.parametrize("make, expected", [
    (lambda: diagrams.transformer_block(pre_norm=False), ["multi-head attention", "add & norm", "Linear → ReLU → Linear"]),
    (lambda: diagrams.transformer_block(pre_norm=True), ["ln_1", "ln_2", "QuickGELU", "pre-norm"]),
    (diagrams.dual_encoder, ["image encoder", "text encoder", "[B, B] logits", "cross-entropy"]),
    (diagrams.decomposition_tree, ["embedding\nterm", "layer 0", "head 0", "tok 0", "MLP"]),
    (diagrams.legrad_pipeline, ["mean over\nall tokens", "∂ score / ∂ A_l", "min-max"]),
])
def test_each_diagram_names_its_parts(make, expected):
    fig = make()
    try:
        text = words(fig)
        for part in expected:
            assert part in text, f"{part!r} missing from the diagram"
        assert fig.axes[0].patches, "no boxes drawn"
    finally:
        plt.close(fig)


def test_the_post_norm_and_pre_norm_blocks_differ_where_the_norm_sits():
    post, pre = diagrams.transformer_block(False), diagrams.transformer_block(True)
    try:
        assert "ln_1" not in words(post) and "add & norm" not in words(pre)
    finally:
        plt.close(post), plt.close(pre)
