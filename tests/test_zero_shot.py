import pytest
import torch
import torch.nn.functional as F

from course_utils import models, toyclip
from course_utils.models import clip
from course_utils.zero_shot import (CIFAR100_TEMPLATES, SINGLE_TEMPLATE, predict, readable, topk_accuracy,
                                    zero_shot_classifier)


@pytest.fixture(scope="module")
def model():
    return models.build(models.TOYCLIP).eval()  # random weights: shapes and algebra only


def test_templates_are_the_clip_repository_list():
    assert len(CIFAR100_TEMPLATES) == 18 and len(set(CIFAR100_TEMPLATES)) == 18
    assert CIFAR100_TEMPLATES[0] == "a photo of a {}." and CIFAR100_TEMPLATES[-1] == "a photo of the big {}."
    assert readable("lawn_mower") == "lawn mower"


def test_classifier_shapes_and_ensemble_is_the_normalised_mean(model):
    single = zero_shot_classifier(model, ["red_circle", "blue_star"], ("a photo of a {}.",))
    assert single.shape == (2, 64) and torch.allclose(single.norm(dim=-1), torch.ones(2))
    ens = zero_shot_classifier(model, ["red_circle", "blue_star"], CIFAR100_TEMPLATES[:3])

    with torch.no_grad():
        e = F.normalize(model.encode_text(clip.tokenize([t.format("red circle") for t in CIFAR100_TEMPLATES[:3]])), dim=-1)
    torch.testing.assert_close(ens[0], F.normalize(e.mean(0), dim=-1), atol=1e-5, rtol=1e-5)


def test_classifier_bad_inputs(model):
    with pytest.raises(ValueError, match="list of class names is empty"):
        zero_shot_classifier(model, [])
    with pytest.raises(ValueError, match="needs a '\\{\\}'"):
        zero_shot_classifier(model, ["cat"], ("a photo",))
    with pytest.raises(ValueError, match="longer than CLIP's 77 tokens"):
        zero_shot_classifier(model, ["very " * 80 + "long cat"])


def test_predict_and_topk():
    img = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    cls = torch.tensor([[10.0, 1.0], [0.0, 1.0]])
    assert predict(img, cls).tolist() == [0, 1]
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    assert topk_accuracy(logits, torch.tensor([1, 2]), 1).item() == 0.5
    assert topk_accuracy(logits, torch.tensor([1, 2]), 3).item() == 1.0
    with pytest.raises(ValueError, match="k=4 must be between 1 and the number of classes \\(3\\)"):
        topk_accuracy(logits, torch.tensor([1, 2]), 4)


def test_evaluate_zero_shot_agrees_with_the_toyclip_evaluator():
    """Two independent implementations (DataLoader + classifier vs toyclip's tensor path) give the same accuracy."""
    from course_utils import toyworld as tw
    from course_utils.models import load_clip
    from course_utils.zero_shot import evaluate_zero_shot

    model, preprocess = load_clip("toy", device="cpu")
    ds = tw.ToyShapes(train=False, n=300)
    classifier = zero_shot_classifier(model, ds.classes, SINGLE_TEMPLATE)
    result = evaluate_zero_shot(model, ds, classifier, preprocess, batch_size=50, progress=False)
    top1, top5, _ = toyclip.zero_shot(model, ds)
    assert result["n"] == 300 and abs(result["top1"] - top1) < 1e-6 and abs(result["top5"] - top5) < 1e-6  # same count of 300
    assert result["top1"] > 0.9  # the bundled model, on its own world
    sub = evaluate_zero_shot(model, ds, classifier, preprocess, indices=range(0, 300, 3), progress=False)
    assert sub["n"] == 100 and torch.equal(sub["labels"], result["labels"][::3])
    with pytest.raises(IndexError, match="index 300 is out of range for a dataset of 300"):
        evaluate_zero_shot(model, ds, classifier, preprocess, indices=[0, 300], progress=False)


def test_ensemble_embeddings_shape_and_norm():
    from course_utils.zero_shot import ensemble_embeddings

    out = ensemble_embeddings(torch.randn(100, 18, 512))
    assert out.shape == (100, 512)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(100))


def test_probabilities_confusion_and_groups():
    from course_utils.zero_shot import confusion_matrix, most_confused, per_group_accuracy, probabilities

    p = probabilities(torch.randn(3, 8), torch.randn(5, 8))
    assert p.shape == (3, 5) and torch.allclose(p.sum(-1), torch.ones(3))
    preds, labels = torch.tensor([0, 1, 1, 2, 1]), torch.tensor([0, 2, 2, 2, 1])
    conf = confusion_matrix(preds, labels, 3)
    assert conf.tolist() == [[1, 0, 0], [0, 1, 0], [0, 2, 1]]
    assert most_confused(conf, 2) == [(2, 1, 2)]
    torch.testing.assert_close(per_group_accuracy(preds, labels, torch.tensor([0, 0, 1])), torch.tensor([1.0, 1 / 3]))


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "P", "I;16", "CMYK"])
def test_classify_converts_any_image_mode(model, mode):
    from PIL import Image

    from course_utils.zero_shot import classify

    image = Image.new("RGB", (64, 64), (200, 30, 30)).convert(mode)
    classifier = zero_shot_classifier(model, ["red_circle", "blue_star", "green_square"])
    top = classify(model, _preprocess(), image, classifier, ["red_circle", "blue_star", "green_square"], k=2)
    assert len(top) == 2 and all(0 <= p <= 1 for _, p in top)


def test_classify_and_example_bad_inputs(model):
    import numpy as np

    from course_utils.toyworld import ToyShapes
    from course_utils.zero_shot import classify, example

    classifier = zero_shot_classifier(model, ["red_circle"])
    with pytest.raises(TypeError, match="PIL image"):
        classify(model, _preprocess(), np.zeros((64, 64, 3)), classifier, ["red_circle"])
    with pytest.raises(ValueError, match="1 class names but 2"):
        classify(model, _preprocess(), None, torch.zeros(2, 64), ["red_circle"])
    ds = ToyShapes(train=False)
    assert example(ds, np.int64(3))[1] == ds[3][1]
    for bad in (len(ds), -1):
        with pytest.raises(IndexError, match=f"use 0 to {len(ds) - 1}"):
            example(ds, bad)
    with pytest.raises(TypeError, match="whole number"):
        example(ds, 1.5)


def test_cifar100_superclasses_cover_the_100_classes_once():
    from course_utils.data import CIFAR100_SUPERCLASSES, superclasses
    from course_utils.toyworld import ToyShapes

    fines = [c for group in CIFAR100_SUPERCLASSES.values() for c in group]
    assert len(CIFAR100_SUPERCLASSES) == 20 and len(fines) == len(set(fines)) == 100
    assert fines == [c for c in fines if c.islower()] and "lawn_mower" in fines

    class FakeCifar:
        classes = sorted(fines)  # torchvision's CIFAR100.classes are sorted alphabetically

    names, group_of = superclasses(FakeCifar)
    assert names[group_of[FakeCifar.classes.index("lion")]] == "large_carnivores"
    names, group_of = superclasses(ToyShapes(train=False, n=100))
    assert len(names) == 20 and group_of.shape == (100,) and torch.bincount(group_of).tolist() == [5] * 20


def _preprocess():
    import clip

    return clip.clip._transform(64)  # what load_clip returns for ToyCLIP's 64 px input
