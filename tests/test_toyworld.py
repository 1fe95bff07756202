import numpy as np
import pytest

from course_utils import toyworld as tw


def test_classes_and_superclasses_mirror_cifar100():
    assert len(tw.CLASSES) == 100 and len(set(tw.CLASSES)) == 100
    assert len(tw.SUPERCLASSES) == 20
    counts = np.bincount([tw.superclass_of(i) for i in range(100)], minlength=20)
    assert (counts == 5).all()  # 5 fine classes per coarse class, as in CIFAR-100


def test_scenes_are_deterministic():
    a, b = tw.random_scene(123), tw.random_scene(123)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image)) and a.caption == b.caption
    assert not np.array_equal(np.asarray(a.image), np.asarray(tw.random_scene(124).image))


def test_masks_cover_each_object_and_the_object_colour():
    for seed in range(30):
        scene = tw.random_scene(seed, n_objects=3)
        pixels = np.asarray(scene.image).astype(int)
        assert len(scene.objects) == 3 and len({o.region for o in scene.objects}) == 3
        for obj in scene.objects:
            assert obj.mask.shape == (tw.IMAGE_SIZE, tw.IMAGE_SIZE) and obj.mask.sum() > 30
            close = (np.abs(pixels[obj.mask] - tw.COLORS[obj.color]).max(axis=1) < 40).mean()  # in the object's colour
            assert close > (0.9 if obj.pattern == "plain" else 0.25), (obj, close)  # a pattern paints the rest
        union = sum(o.mask.astype(int) for o in scene.objects)
        assert union.max() == 1  # objects never overlap


def test_a_pattern_paints_a_second_tone_inside_the_object_only():
    base = dict(color="blue", shape="square", size="large", region=(0, 1))
    plain = tw.draw_scene([base], seed=3)
    assert plain.objects[0].pattern == "plain"
    pixels = np.asarray(plain.image).astype(int)
    for pattern in tw.PATTERNS[1:]:
        scene = tw.draw_scene([{**base, "pattern": pattern}], seed=3)
        changed = (np.asarray(scene.image).astype(int) != pixels).any(axis=2)  # [H, W]
        mask = scene.objects[0].mask
        assert scene.objects[0].pattern == pattern and np.array_equal(mask, plain.objects[0].mask)
        assert changed.any() and not changed[~mask].any(), pattern  # only the object's own pixels change
        assert 0.1 < changed[mask].mean() < 0.7, (pattern, changed[mask].mean())  # a second tone, not a new colour
    with pytest.raises(ValueError, match="unknown pattern 'wavy'; the toy world has: plain, striped"):
        tw.draw_scene([{**base, "pattern": "wavy"}])
    drawn = {o.pattern for i in range(60) for o in tw.random_scene(i).objects}
    assert drawn == set(tw.PATTERNS)  # random scenes use every pattern


def test_captions_name_every_object():
    for seed in range(50):
        scene = tw.random_scene(seed)
        for obj in scene.objects:
            assert f"{obj.color} {obj.shape}" in scene.caption, scene.caption


def test_dataset_interface_matches_torchvision_cifar100():
    ds = tw.ToyShapes(train=False)
    assert len(ds) == 2000 and ds.classes == tw.CLASSES and ds.class_to_idx["red_circle"] == 0
    image, label = ds[105]
    assert image.size == (64, 64) and image.mode == "RGB" and label == 5
    assert ds.scene(105).objects[0].label == 5
    assert np.bincount([ds[i][1] for i in range(200)]).tolist() == [2] * 100  # balanced
    train = tw.ToyShapes(train=True, n=10)
    assert not np.array_equal(np.asarray(train[0][0]), np.asarray(ds[0][0]))  # different splits
    assert tw.ToyShapes(n=3, transform=lambda im: im.size)[0][0] == (64, 64)


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="unknown colour 'magenta'.*red, orange"):
        tw.class_name("magenta", "circle")
    with pytest.raises(ValueError, match="unknown shape 'blob'.*circle"):
        tw.draw_scene([dict(color="red", shape="blob", size="small", region=(0, 0))])
    with pytest.raises(ValueError, match="impossible scene: 5 objects but only 4 regions"):
        tw.draw_scene([dict(color="red", shape="circle", size="small", region=(0, 0))] * 5)
    with pytest.raises(ValueError, match="impossible scene: two objects share a region"):
        tw.draw_scene([dict(color="red", shape="circle", size="small", region=(0, 0))] * 2)
    with pytest.raises(ValueError, match="impossible scene: n_objects=7"):
        tw.random_scene(0, n_objects=7)
    with pytest.raises(IndexError, match="index 2000 is out of range"):
        tw.ToyShapes()[2000]
