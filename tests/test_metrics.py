import numpy as np
import pytest

from course_utils.metrics import pointing_hit, standard_tolerance


def test_pointing_hit_strict_and_with_tolerance():
    mask = np.zeros((10, 10), bool)
    mask[2:4, 2:4] = True
    heat = np.zeros((10, 10))
    heat[3, 3] = 1.0
    assert pointing_hit(heat, mask)
    heat = np.zeros((10, 10))
    heat[3, 6] = 1.0  # 3 px right of the mask's last column
    assert not pointing_hit(heat, mask) and not pointing_hit(heat, mask, 2.9) and pointing_hit(heat, mask, 3)


def test_standard_tolerance_scales_15px_at_224():
    assert standard_tolerance(224) == 15 and standard_tolerance(64) == 4


def test_pointing_hit_bad_inputs():
    with pytest.raises(ValueError, match="heatmap \\(4, 4\\) and mask \\(8, 8\\) differ"):
        pointing_hit(np.zeros((4, 4)), np.ones((8, 8), bool))
    with pytest.raises(ValueError, match="mask is empty"):
        pointing_hit(np.zeros((4, 4)), np.zeros((4, 4), bool))
