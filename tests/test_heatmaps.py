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
    with pytest.raises(IndexError, match="4 layers"):
        textspan_heatmap(model, image, texts, layers=[4])
    with pytest.raises(IndexError, match="2 heads"):
        textspan_heatmap(model, image, texts, heads=5)
    with pytest.raises(ValueError, match="P >= 1"):
        textspan_heatmap(model, image, torch.zeros(0, 64))
    with pytest.raises(ValueError, match="one image"):
        textspan_heatmap(model, image[None], texts)


def test_overlay():
    image = np.full((8, 8, 3), 255, np.uint8)
    out = overlay(image, torch.arange(64.0).view(8, 8))
    assert out.shape == (8, 8, 3) and 0 <= out.min() and out.max() <= 1
    with pytest.raises(ValueError, match="differ"):
        overlay(image, torch.zeros(4, 4))
