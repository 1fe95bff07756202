import numpy as np
import pytest
import torch

from course_utils.heatmaps import upsample
from course_utils.metrics import peak_share, pointing_hit, standard_tolerance


def test_pointing_hit_strict_and_with_tolerance():
    mask = np.zeros((10, 10), bool)
    mask[2:4, 2:4] = True
    heat = np.zeros((10, 10))
    heat[3, 3] = 1.0
    assert pointing_hit(heat, mask)
    heat = np.zeros((10, 10))
    heat[3, 6] = 1.0  # 3 px right of the mask's last column
    assert not pointing_hit(heat, mask) and not pointing_hit(heat, mask, 2.9) and pointing_hit(heat, mask, 3)


def test_peak_share_scores_a_plateau_by_its_share_on_the_mask():
    """Upsampling repeats a border patch over half a patch of pixels: the maximum becomes a plateau, pointing_hit takes
    its first pixel in reading order, peak_share the share of it on the mask."""
    grid = torch.zeros(1, 1, 8, 8)
    grid[0, 0, 0, 3], grid[0, 0, 0, 4] = 1.0, 0.5  # the peak on a patch of the top row, unequal neighbours
    heat = upsample(grid, 64)[0, 0]  # [64, 64]
    top = heat == heat.max()
    assert top.sum() == 4 and top[:4].any(dim=1).all() and not top[4:].any()  # rows 0-3: 4 equal pixels, one column
    mask = np.zeros((64, 64), bool)
    mask[2:10, 20:40] = True  # covers the plateau's lower half only
    assert not pointing_hit(heat, mask)  # the first maximal pixel, row 0, is off the mask
    assert peak_share(heat, mask) == 0.5
    mask[:2, 20:40] = True
    assert pointing_hit(heat, mask) and peak_share(heat, mask) == 1.0
    single = np.zeros((10, 10))
    single[3, 3] = 1.0
    on = np.zeros((10, 10), bool)
    on[3, 3] = True
    assert peak_share(single, on) == 1.0 and peak_share(single, ~on) == 0.0
    with pytest.raises(ValueError, match="peak_share: heatmap \\(4, 4\\) and mask \\(8, 8\\) differ"):
        peak_share(np.zeros((4, 4)), np.ones((8, 8), bool))


def test_standard_tolerance_scales_15px_at_224():
    assert standard_tolerance(224) == 15 and standard_tolerance(64) == 4


def test_pointing_hit_bad_inputs():
    with pytest.raises(ValueError, match="heatmap \\(4, 4\\) and mask \\(8, 8\\) differ"):
        pointing_hit(np.zeros((4, 4)), np.ones((8, 8), bool))
    with pytest.raises(ValueError, match="mask is empty"):
        pointing_hit(np.zeros((4, 4)), np.zeros((4, 4), bool))


def test_segmentation_metrics_on_known_cases():
    import numpy as np

    from course_utils.metrics import average_precision, binarize, mean_iou, pixel_accuracy, segmentation_scores

    mask = np.zeros((4, 4), bool)
    mask[:2] = True  # top half is the object
    perfect = mask.astype(float)
    assert segmentation_scores(perfect, mask) == dict(pixel_acc=1.0, miou=1.0, ap=1.0)
    inverted = segmentation_scores(1 - perfect, mask)
    assert inverted["pixel_acc"] == 0.0 and inverted["miou"] == 0.0 and inverted["ap"] < 0.6
    pred = np.zeros((4, 4), bool)
    pred[0] = True  # half of the object, no background
    assert pixel_accuracy(pred, mask) == 0.75
    assert mean_iou(pred, mask) == (4 / 8 + 8 / 12) / 2
    assert average_precision(np.full((4, 4), 0.3), mask) == 0.5  # one tie: precision = prevalence
    assert binarize(np.arange(16).reshape(4, 4)).sum() == 8


def test_segmentation_metrics_bad_inputs():
    import numpy as np
    import pytest

    from course_utils.metrics import average_precision, mean_iou

    with pytest.raises(ValueError, match="differ"):
        mean_iou(np.zeros((4, 4), bool), np.zeros((8, 8), bool))
    with pytest.raises(ValueError, match="empty"):
        average_precision(np.ones((4, 4)), np.zeros((4, 4), bool))
