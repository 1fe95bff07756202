import pytest
import torch

from course_utils.decompose import decompose, token_maps
from course_utils.inside_vit import trace_vit
from course_utils.models import model_info, random_clip


@pytest.fixture(scope="module")
def b32():
    return random_clip("ViT-B/32").float()


def _check_architecture(model, batch=2):
    info = model_info(model)
    images = torch.randn(batch, 3, info.image_resolution, info.image_resolution)
    with torch.no_grad():
        expected = model.encode_image(images)
        trace = trace_vit(model, images)
        assert len(trace.residuals) == info.layers + 1
        assert trace.attn_probs[0].shape == (batch, info.heads, info.grid**2 + 1, info.grid**2 + 1)
        torch.testing.assert_close(trace.embedding, expected, atol=1e-5, rtol=1e-5)
        dec = decompose(model, images)
    assert dec.attn.shape == (batch, info.layers, info.grid**2 + 1, info.heads, info.embed_dim)
    assert dec.mlp.shape == (batch, info.layers + 1, info.embed_dim)
    rel = (dec.total() - expected).norm(dim=-1) / expected.norm(dim=-1)
    assert rel.max() < 1e-5, f"decomposition misses encode_image by {rel.max():.2e} (relative)"


def test_trace_and_decomposition_are_exact_b32(b32):
    _check_architecture(b32)


def test_trace_and_decomposition_are_exact_b16():
    _check_architecture(random_clip("ViT-B/16").float(), batch=1)


def test_token_maps_shape(b32):
    maps = token_maps(b32, torch.randn(2, 3, 224, 224), torch.randn(5, 512))
    assert maps.shape == (2, 5, 224, 224)


def test_trace_rejects_wrong_images(b32):
    with pytest.raises(ValueError, match="expects images \\[B, 3, H, W\\]"):
        trace_vit(b32, torch.randn(3, 224, 224))
    with pytest.raises(ValueError, match="64 px but the model expects 224 px"):
        trace_vit(b32, torch.randn(1, 3, 64, 64))
