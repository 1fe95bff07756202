import numpy as np
import pytest
import torch

from course_utils.heatmaps import overlay, textspan_heatmap
from course_utils.models import load_toyclip, random_clip


@pytest.mark.parametrize("name,grid", [("ViT-B/32", 7), ("ViT-B/16", 14)])
def test_heatmap_shapes_and_relative_mean(name, grid):
    model = random_clip(name).float()
    image = torch.randn(3, 224, 224)
    texts = torch.randn(3, 512)
    absolute = textspan_heatmap(model, image, texts, relative=False)
    relative = textspan_heatmap(model, image, texts)
    assert absolute.shape == relative.shape == (3, 224, 224)
    torch.testing.assert_close(relative, absolute - absolute.mean(0, keepdim=True))
    torch.testing.assert_close(relative.sum(0), torch.zeros(224, 224), atol=1e-4, rtol=0)


def test_heatmap_finds_the_object_on_toyclip():
    """Not just shapes: ToyCLIP's map for the scene's own class peaks on that object more often than chance."""
    import clip

    from course_utils import toyworld as tw
    from course_utils.metrics import pointing_hit

    model, preprocess = load_toyclip("cpu")
    model = model.float()
    names = [n.replace("_", " ") for n in tw.CLASSES]
    with torch.no_grad():
        text = model.encode_text(clip.tokenize([f"a photo of a {n}" for n in names])).float()
    hits = []
    for scene in tw.scenes(40, n_objects=2):
        maps = textspan_heatmap(model, preprocess(scene.image), text)
        for obj in scene.objects:
            hits.append(pointing_hit(maps[obj.label], obj.mask, tolerance_px=4))
    assert np.mean(hits) > 0.8  # two objects per scene: chance is about 0.5


def test_heatmap_bad_inputs():
    model, _ = load_toyclip("cpu")
    image, texts = torch.randn(3, 64, 64), torch.randn(2, 64)
    with pytest.raises(IndexError, match="6 layers"):
        textspan_heatmap(model, image, texts, layers=[6])
    with pytest.raises(IndexError, match="8 heads"):
        textspan_heatmap(model, image, texts, heads=8)
    with pytest.raises(ValueError, match="P >= 1"):
        textspan_heatmap(model, image, torch.zeros(0, 64))
    with pytest.raises(ValueError, match="one image"):
        textspan_heatmap(model, image[None], texts)
    with pytest.raises(ValueError, match="224 px but the model expects 64 px.*preprocess"):
        textspan_heatmap(model, torch.randn(3, 224, 224), texts)  # a raw image, not through the model's preprocess


def test_overlay():
    image = np.full((8, 8, 3), 255, np.uint8)
    out = overlay(image, torch.arange(64.0).view(8, 8))
    assert out.shape == (8, 8, 3) and 0 <= out.min() and out.max() <= 1
    with pytest.raises(ValueError, match="differ"):
        overlay(image, torch.zeros(4, 4))


def test_critical_line_pieces():
    from course_utils.heatmaps import patch_scores, relative_to_prompts, to_grid

    attn = torch.randn(1, 12, 50, 12, 16)  # ViT-B/32's [B, L, N, H, d], with a small d
    texts = torch.randn(5, 16)
    seed_line = attn[0, :, 1:, :].sum(axis=(0, 2)) @ texts.T  # seed 000's line: [49, 5]
    torch.testing.assert_close(patch_scores(attn, texts)[0], seed_line.T, atol=1e-4, rtol=1e-5)
    grid = to_grid(torch.arange(49.0))
    assert grid.shape == (7, 7) and grid[1, 0] == 7  # reading order: the second row starts at patch 7
    with pytest.raises(ValueError, match="not a square grid"):
        to_grid(torch.zeros(50))
    maps = torch.randn(2, 5, 4, 4)
    torch.testing.assert_close(relative_to_prompts(maps).sum(dim=1), torch.zeros(2, 4, 4), atol=1e-5, rtol=0)


def test_resnet_clip_is_refused_clearly():
    import clip

    resnet = clip.model.CLIP(64, 64, (1, 1, 1, 1), 64, None, 77, 49408, 64, 2, 1)
    with pytest.raises(TypeError, match="ModifiedResNet is not supported"):
        textspan_heatmap(resnet, torch.randn(3, 64, 64), torch.randn(2, 64))


@pytest.mark.parametrize("convention", ["paper", "centred"])
@pytest.mark.parametrize("normalize", [False, True])
def test_token_maps_equal_the_critical_line_on_the_full_decomposition(convention, normalize):
    """token_maps reads the texts through each head's readout first (decompose.text_scores); the numbers must be the
    critical line's on decompose's full [B, L, N, H, d] tensor, for every layer/head choice."""
    import torch.nn.functional as F
    from course_utils.decompose import decompose, text_scores
    from course_utils.heatmaps import patch_scores, to_grid, token_maps, upsample
    model, _ = load_toyclip("cpu")
    g = torch.Generator().manual_seed(3)
    images, texts = torch.randn(2, 3, 64, 64, generator=g), F.normalize(torch.randn(4, 64, generator=g), dim=-1)
    dec = decompose(model, images, normalize=normalize, convention=convention)
    torch.testing.assert_close(text_scores(model, images, texts, normalize, convention), dec.attn @ texts.T,
                               atol=1e-5, rtol=1e-4)
    for layers, heads in [(None, None), ([2, 3], None), (3, [0, 5]), (None, 7)]:
        want = upsample(to_grid(patch_scores(dec.select(layers, heads), texts)), 64)
        got = token_maps(model, images, texts * 3.0, layers, heads, normalize, convention)  # texts are normalised
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
