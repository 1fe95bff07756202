import pytest
import torch

from course_utils import by_hand, checks


def test_every_reference_passes_its_own_checker(capsys):
    for name, ex in checks.EXERCISES.items():
        assert checks.check(name, ex.reference), name
    assert capsys.readouterr().out.count("✅") == len(checks.EXERCISES)


def test_stub_fails_and_says_so(capsys):
    def stub(*args):
        raise NotImplementedError

    assert checks.check("softmax", stub) is False
    assert "❌ softmax: not implemented yet" in capsys.readouterr().out


def test_wrong_values_report_max_delta_and_first_index(capsys):
    assert not checks.check("layer_norm", lambda x, g, b: (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True) * g + b)
    out = capsys.readouterr().out
    assert "max |Δ| =" in out and "first wrong index (0, 0)" in out and "False" not in out


def test_wrong_shape_is_named(capsys):
    assert not checks.check("positional_encoding", torch.zeros(6, 7))
    assert "shape mismatch: got (6, 7), expected (7, 6)" in capsys.readouterr().out


def test_unstable_softmax_gets_the_nan_and_the_hint(capsys):
    assert not checks.check("softmax", lambda x: torch.exp(x) / torch.exp(x).sum(-1, keepdim=True))
    out = capsys.readouterr().out
    assert "NaN" in out and "hint: " in out


def test_seed_style_cross_attention_fails(capsys):
    """Queries from the encoder (the seed's mistake) must not pass the cross-attention checker."""
    def seed_version(dec, enc, wq, wk, wv):
        return by_hand.scaled_dot_product_attention(enc @ wq, enc @ wk, enc @ wv)

    assert not checks.check("cross_attention", seed_version)
    assert "shape mismatch: got (7, 6), expected (4, 6)" in capsys.readouterr().out


def test_exception_in_learner_code_is_shown(capsys):
    assert not checks.check("causal_mask", lambda n: torch.zeros(n) @ torch.zeros(n + 1))
    assert "raised RuntimeError" in capsys.readouterr().out


def test_unknown_exercise_name():
    with pytest.raises(KeyError, match="no exercise called 'softmx'.*softmax"):
        checks.check("softmx", lambda x: x)


def test_assert_same_raises_with_details_and_prints_on_success(capsys):
    checks.assert_same("same", torch.ones(3), torch.ones(3) + 1e-7)
    assert "✅ same" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=r"differ: max \|Δ\| = 0.5.*index \(1,\)"):
        checks.assert_same("differ", torch.tensor([0.0, 0.5, 0.0]), torch.zeros(3))
    with pytest.raises(AssertionError, match="shape mismatch"):
        checks.assert_same("shapes", torch.zeros(2, 3), torch.zeros(3, 2))


def test_infinities_must_match_exactly():
    mask = by_hand.causal_mask(3)
    assert checks.compare(mask, mask) is None
    assert "inf" in checks.compare(torch.zeros(3, 3), mask)
