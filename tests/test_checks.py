from typing import Callable

import pytest
import torch
import torch.nn.functional as F

from course_utils import by_hand, checks


# ---- mutation test: every checker must reject a slightly wrong answer ------------------------------------
# A mutation turns the reference into a slightly wrong learner answer: `mutate(reference)` is the wrong function.
def _on_result(change):
    """The reference, with its result changed by `change`."""
    return lambda reference: (lambda *args: change(reference(*args)))


def _on_arg(position: int, change):
    """The reference, called with argument `position` changed by `change` (a typical learner slip)."""
    def mutate(reference):
        return lambda *args: reference(*(change(a) if i == position else a for i, a in enumerate(args)))
    return mutate


def _plus_one_on_first_entry(result: torch.Tensor) -> torch.Tensor:
    flat = result.flatten().clone()
    flat[0] += 1
    return flat.reshape(result.shape)


SCALED = ("result × 1.01", _on_result(lambda r: r * 1.01))
SHIFTED = ("result + 0.01", _on_result(lambda r: r + 0.01))
TRANSPOSED = ("last two dims swapped", _on_result(lambda r: r.transpose(-1, -2)))
FIRST_ROW_DROPPED = ("first row (1-D: first entry) dropped", _on_result(lambda r: r[1:]))
ROLLED = ("rolled by one along the last dim", _on_result(lambda r: r.roll(1, dims=-1)))
ROWS_ROLLED = ("rolled by one along dim -2", _on_result(lambda r: r.roll(1, dims=-2)))
PLUS_ONE = ("+1 on the first entry", _on_result(_plus_one_on_first_entry))

Mutation = tuple[str, Callable[[Callable], Callable]]  # (label, reference -> slightly wrong function)
MUTATIONS: dict[str, list[Mutation]] = {
    # notebook 01
    "positional_encoding": [SCALED, TRANSPOSED, FIRST_ROW_DROPPED],
    "softmax": [SCALED, TRANSPOSED,
                ("normalised down the columns", lambda ref: lambda x: ref(x.transpose(-1, -2)).transpose(-1, -2))],
    "causal_mask": [SHIFTED, TRANSPOSED, ("mask for n + 1 tokens", _on_arg(0, lambda n: n + 1))],
    "layer_norm": [SCALED, TRANSPOSED, ("γ and β swapped", lambda ref: lambda x, g, b: ref(x, b, g))],
    "scaled_dot_product_attention": [SCALED, TRANSPOSED,
                                     ("queries and keys swapped", lambda ref: lambda q, k, v: ref(k, q, v))],
    "cross_attention": [SCALED, TRANSPOSED],
    # notebook 02
    "similarity_logits": [SCALED, TRANSPOSED,
                          ("times logit_scale instead of exp(logit_scale)", _on_arg(2, torch.log))],
    "clip_loss": [SCALED, SHIFTED],
    "zero_shot_predict": [PLUS_ONE, ROLLED],
    "topk_accuracy": [SHIFTED, ("k + 1", _on_arg(2, lambda k: k + 1))],
    # notebook 03
    "zero_shot_probabilities": [SCALED, TRANSPOSED],
    "ensemble_embeddings": [SCALED, TRANSPOSED],
    "per_group_accuracy": [SHIFTED, ROLLED],
    "confusion_matrix": [PLUS_ONE, TRANSPOSED],
    # notebook 04
    "patchify": [SCALED, TRANSPOSED, ("patches rolled by one", _on_result(lambda r: r.roll(1, dims=1)))],
    "quick_gelu": [SCALED, SHIFTED, ("exact GELU instead of QuickGELU", lambda ref: torch.nn.functional.gelu)],
    "multihead_self_attention": [SCALED, TRANSPOSED, ROWS_ROLLED],
    "residual_block": [SCALED, TRANSPOSED],
    "cls_attention_maps": [SCALED, TRANSPOSED],
    # notebook 05
    "linearised_layer_norm": [SCALED, TRANSPOSED],
    "head_token_terms": [SCALED, TRANSPOSED, ("heads rolled by one", _on_result(lambda r: r.roll(1, dims=2)))],
    "fold_ln_proj": [SCALED, TRANSPOSED, FIRST_ROW_DROPPED],
    "mean_ablated_sum": [SCALED, TRANSPOSED, ("ablation mask inverted", _on_arg(1, lambda mask: ~mask))],
    # notebook 06
    "restrict_to_top_directions": [SCALED, TRANSPOSED, ("rank + 1", _on_arg(2, lambda rank: rank + 1)),
                                   ("outputs centred first (the other convention)",
                                    _on_arg(1, lambda outputs: outputs - outputs.mean(dim=0, keepdim=True)))],
    "projection_variance": [SCALED, ROLLED],
    "remove_direction": [SCALED, SHIFTED],
    "textspan_greedy": [PLUS_ONE, ROLLED, FIRST_ROW_DROPPED],
    # notebook 07
    "patch_scores": [SCALED, TRANSPOSED],
    "to_grid": [SCALED, TRANSPOSED],
    "relative_to_prompts": [SCALED, TRANSPOSED],
    "mean_iou": [SHIFTED],
    # notebook 08
    "token_mean_embedding": [SCALED, TRANSPOSED],
    "relevance_from_grad": [SCALED, ROLLED],
    "min_max": [SCALED, SHIFTED, TRANSPOSED],
    "rollout_from_probs": [SCALED, ROLLED, FIRST_ROW_DROPPED],
    # notebook 09
    "group_accuracy": [SHIFTED, ROLLED,
                       ("hits over all images, not the group's", lambda ref: lambda c, g, n: ref(c, g, n)
                        * torch.bincount(g, minlength=n) / len(g))],
    "group_average": [SHIFTED, ("typical and atypical swapped", lambda ref: lambda p, m: ref(p, 1 - m)),
                      ("plain mean of the groups", lambda ref: lambda p, m: p.mean())],
    "mean_ablate_heads": [SCALED, ("nothing ablated", lambda ref: lambda h, chosen: h.clone()),
                          ("every head of the chosen layers ablated", lambda ref: lambda h, chosen: ref(
                              h, [(l, j) for l, _ in chosen for j in range(h.shape[2])]))],
    "precision_at_k": [SHIFTED, ("k + 1", _on_arg(2, lambda k: k + 1)),
                       ("the query retrieves itself", lambda ref: lambda e, v, k: (
                           v[(F.normalize(e, dim=-1) @ F.normalize(e, dim=-1).T).topk(k, dim=-1).indices] == v[:, None]
                       ).float().mean(dim=-1))],
}


def test_mutation_table_covers_every_exercise():
    missing = sorted(set(checks.EXERCISES) - set(MUTATIONS))
    unknown = sorted(set(MUTATIONS) - set(checks.EXERCISES))
    assert not missing, f"exercises without a mutation in MUTATIONS (add at least one slightly wrong answer): {missing}"
    assert not unknown, f"MUTATIONS names exercises that do not exist: {unknown}"


@pytest.mark.parametrize("name", sorted(checks.EXERCISES))
def test_reference_passes_and_slightly_wrong_answers_fail(name, capsys):
    ex = checks.EXERCISES[name]
    assert checks.verdict(name, ex.reference), f"{name}: the reference fails its own checker"
    assert f"✅ {name}" in capsys.readouterr().out
    mutations = MUTATIONS.get(name)
    assert mutations, f"{name}: no mutation in MUTATIONS, so nothing shows its checker can fail"
    for label, mutate in mutations:
        passed = checks.verdict(name, mutate(ex.reference))
        out = capsys.readouterr().out
        assert not passed, f"{name}: the slightly wrong answer [{label}] PASSES the checker (atol {ex.atol:g}):\n{out}"
        assert ": raised " not in out, f"{name}: mutation [{label}] crashed instead of giving a wrong answer:\n{out}"
        assert f"❌ {name}" in out


def test_stub_fails_and_says_so(capsys):
    def stub(*args):
        raise NotImplementedError

    assert checks.verdict("softmax", stub) is False
    assert "❌ softmax: not implemented yet" in capsys.readouterr().out


def test_wrong_values_report_max_delta_and_first_index(capsys):
    assert not checks.verdict("layer_norm", lambda x, g, b: (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True) * g + b)
    out = capsys.readouterr().out
    assert "max |Δ| =" in out and "first wrong index (0, 0)" in out and "False" not in out


def test_wrong_shape_is_named(capsys):
    assert not checks.verdict("positional_encoding", torch.zeros(6, 7))
    assert "shape mismatch: got (6, 7), expected (7, 6)" in capsys.readouterr().out


def test_unstable_softmax_gets_the_nan_and_the_hint(capsys):
    assert not checks.verdict("softmax", lambda x: torch.exp(x) / torch.exp(x).sum(-1, keepdim=True))
    out = capsys.readouterr().out
    assert "NaN" in out and "hint: " in out


def test_seed_style_cross_attention_fails(capsys):
    """Queries from the encoder (the seed's mistake) must not pass the cross-attention checker."""
    def seed_version(dec, enc, wq, wk, wv):
        return by_hand.scaled_dot_product_attention(enc @ wq, enc @ wk, enc @ wv)

    assert not checks.verdict("cross_attention", seed_version)
    assert "shape mismatch: got (7, 6), expected (4, 6)" in capsys.readouterr().out


def test_exception_in_learner_code_is_shown(capsys):
    assert not checks.verdict("causal_mask", lambda n: torch.zeros(n) @ torch.zeros(n + 1))
    assert "raised RuntimeError" in capsys.readouterr().out


def test_unknown_exercise_name():
    with pytest.raises(KeyError, match="no exercise called 'softmx'.*softmax"):
        checks.verdict("softmx", lambda x: x)


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


def test_check_returns_the_learners_function_when_it_passes_and_the_reference_otherwise(capsys):
    from course_utils.checker import EXERCISES
    def mine(x):
        return EXERCISES["softmax"].reference(x)

    assert checks.check("softmax", mine) is mine

    def stub(x):
        raise NotImplementedError

    fallback = checks.check("softmax", stub)
    out = capsys.readouterr().out
    assert fallback is EXERCISES["softmax"].reference and "the cells below use the course's reference softmax" in out
    wrong = checks.check("positional_encoding", torch.zeros(7, 6))  # a value: the reference value comes back
    assert torch.allclose(wrong, by_hand.positional_encoding(7, 6))
    again = checks.check("softmax", fallback)  # the checker cell rerun without the exercise cell: no false ✅
    out = capsys.readouterr().out
    assert again is fallback and "✅" not in out and "still the course's reference" in out
