"""course_utils.legrad: checked against the authors' package (legrad-torch 1.1 on open_clip <= 2.23.0)."""
import pytest
import torch
import torch.nn.functional as F

from course_utils.legrad import legrad
from course_utils.legrad_twin import legrad_torch_maps, open_clip_twin
from course_utils.models import load_toyclip, random_clip


@pytest.fixture(scope="module")
def b16():
    return random_clip("ViT-B/16", seed=1).float()


@pytest.mark.parametrize("layer_index,layers", [(-2, None), (-5, [7, 8, 9, 10, 11])])
def test_matches_legrad_torch_on_the_same_weights(b16, layer_index, layers):
    torch.manual_seed(0)
    image = torch.randn(1, 3, 224, 224)
    texts = F.normalize(torch.randn(4, 512), dim=-1)
    twin = open_clip_twin(b16)
    with torch.no_grad():  # first the encoders themselves: the same weights give the same embedding
        torch.testing.assert_close(twin.encode_image(image), b16.encode_image(image), atol=1e-5, rtol=1e-5)
    theirs = legrad_torch_maps(b16, layer_index)(image[0], texts)  # [P, R, R], from the authors' package
    ours = legrad(b16, image[0], texts, layers=layers)
    assert ours.shape == theirs.shape == (4, 224, 224)
    assert (ours - theirs).abs().max().item() < 1e-4
    # and the maps are not trivially equal: different prompts give different maps
    assert (ours[0] - ours[1]).abs().max() > 0.05
    with torch.inference_mode():  # prompts as zero_shot_classifier returns them (notebook 08's class embeddings)
        frozen = texts.clone()
    torch.testing.assert_close(legrad_torch_maps(b16, layer_index)(image[0], frozen), theirs)


def test_batched_prompts_equal_one_prompt_at_a_time(b16):
    torch.manual_seed(1)
    image, texts = torch.randn(3, 224, 224), torch.randn(3, 512)
    together = legrad(b16, image, texts)
    one_by_one = torch.cat([legrad(b16, image, t[None]) for t in texts])
    torch.testing.assert_close(together, one_by_one, atol=1e-5, rtol=0)
    assert together.min() == 0 and (together.amax(dim=(1, 2)) - 1).abs().max() < 1e-6


def test_legrad_works_inside_inference_mode_and_on_toyclip():
    model, preprocess = load_toyclip("cpu")
    from course_utils import toyworld as tw

    image = preprocess(tw.random_scene(3).image)
    with torch.inference_mode():
        maps = legrad(model, image, torch.randn(2, 64), layers=[-1])
    assert maps.shape == (2, 64, 64) and torch.isfinite(maps).all()


def test_legrad_bad_inputs(b16):
    import clip

    model, _ = load_toyclip("cpu")
    image, texts = torch.randn(3, 64, 64), torch.randn(2, 64)
    with pytest.raises(ValueError, match="64 px"):
        legrad(model, torch.randn(3, 224, 224), texts)
    with pytest.raises(ValueError, match="at least one prompt"):
        legrad(model, image, torch.zeros(0, 64))
    with pytest.raises(ValueError, match="same model"):
        legrad(model, image, torch.randn(2, 512))
    with pytest.raises(IndexError, match="6 blocks"):
        legrad(model, image, texts, layers=[6])
    with pytest.raises(ValueError, match="layers is empty"):
        legrad(model, image, texts, layers=[])
    resnet = clip.model.CLIP(64, 64, (1, 1, 1, 1), 64, None, 77, 49408, 64, 2, 1)
    with pytest.raises(TypeError, match="ModifiedResNet is not supported"):
        legrad(resnet, image, texts)


def test_legrads_premise_holds_on_toyclip_and_fails_untrained():
    """The bundled ToyCLIP is trained so that its last block's token-mean readout (what LeGrad differentiates)
    classifies; block 0's does not, and neither does the same architecture untrained (the negative control)."""
    from course_utils import toyworld as tw
    from course_utils.legrad import readout_accuracy
    from course_utils.models import TOYCLIP, build
    from course_utils.zero_shot import zero_shot_classifier

    model, preprocess = load_toyclip("cpu")
    ds = tw.ToyShapes(train=False, n=200)
    images = torch.stack([preprocess(ds[i][0]) for i in range(200)])
    labels = torch.tensor([ds[i][1] for i in range(200)])
    acc = readout_accuracy(model, images, labels, zero_shot_classifier(model, tw.CLASSES))
    assert len(acc["token_mean"]) == 6 and acc["cls"] > 0.95
    assert acc["token_mean"][-1] >= 0.8 and acc["token_mean"][0] < 0.2
    untrained = build(TOYCLIP, seed=1).eval()
    acc = readout_accuracy(untrained, images, labels, zero_shot_classifier(untrained, tw.CLASSES))
    assert max(acc["token_mean"]) < 0.1
