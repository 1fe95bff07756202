"""Head roles at work (notebook 09): the spurious-cue test set, the head ablation, retrieval by one property."""
import numpy as np
import pytest
import torch

from course_utils import roles_at_work as rw
from course_utils import toyworld as tw
from course_utils.decompose import HeadContributions


def test_prompts_name_each_shape_by_its_typical_colour_and_refuse_unknown_words():
    prompts = rw.spurious_prompts()
    assert prompts[0] == "a photo of a red circle" and len(prompts) == len(tw.SHAPES)
    assert len({p.split()[-2] for p in prompts}) == len(tw.COLORS)  # a different colour for every shape
    with pytest.raises(ValueError, match="no colour given"):
        rw.spurious_prompts({"circle": "red"})
    with pytest.raises(ValueError, match="unknown colour 'teal'"):
        rw.spurious_prompts({**rw.TYPICAL_COLOUR, "star": "teal"})


def test_test_set_has_twenty_balanced_groups_and_the_ground_truth_of_what_was_drawn():
    data = rw.spurious_test_set(n_per_group=3)
    assert len(data.images) == 60 and torch.bincount(data.groups).tolist() == [3] * 20
    colours = [list(tw.COLORS)[i] for i in data.values["colour"]]
    shapes = [tw.SHAPES[i] for i in data.labels]
    for colour, shape, typical, group in zip(colours, shapes, data.typical, data.groups):
        assert (colour == rw.TYPICAL_COLOUR[shape]) == bool(typical)
        assert group == 2 * tw.SHAPES.index(shape) + (0 if typical else 1)
    again = rw.spurious_test_set(n_per_group=3)
    assert (np.asarray(again.images[7]) == np.asarray(data.images[7])).all()  # drawn from seeds, not from chance
    with pytest.raises(ValueError, match="n_per_group=0"):
        rw.spurious_test_set(0)


def test_group_accuracy_and_the_waterbirds_weighted_average():
    correct = torch.tensor([True, False, True, True, False, False])
    groups = torch.tensor([0, 0, 1, 1, 2, 3])
    assert rw.group_accuracy(correct, groups, 4).tolist() == [0.5, 1.0, 0.0, 0.0]
    per_group = torch.tensor([1.0, 0.0, 0.8, 0.4])  # class 0: typical 1.0, atypical 0; class 1: 0.8, 0.4
    assert rw.group_average(per_group, 0.9).item() == pytest.approx((0.9 + (0.9 * 0.8 + 0.1 * 0.4)) / 2)


def _contributions(n=40, L=2, H=3, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return HeadContributions(heads=torch.randn(n, L, H, d, generator=g), cls=torch.randn(n, L, d, generator=g),
                             mlp=torch.randn(n, L + 1, d, generator=g), labels=torch.zeros(n, dtype=torch.long))


def test_the_ablation_helper_changes_only_the_chosen_heads():
    c = _contributions()
    before = c.heads.clone()
    chosen = [(0, 1), (1, 2)]
    ablated = rw.ablate_heads(c, chosen)
    assert torch.equal(c.heads, before)  # the input is left alone
    for l in range(2):
        for h in range(3):
            if (l, h) in chosen:  # every image now carries the dataset mean of that head
                mean = before[:, l, h].mean(dim=0)
                assert torch.allclose(ablated.heads[:, l, h], mean.expand(40, -1))
                assert not torch.allclose(ablated.heads[:, l, h], before[:, l, h])
            else:
                assert torch.equal(ablated.heads[:, l, h], before[:, l, h])
    assert ablated.mlp is c.mlp and ablated.cls is c.cls
    # mean-ablation keeps the dataset's mean embedding
    assert torch.allclose(ablated.total().mean(dim=0), c.total().mean(dim=0), atol=1e-5)
    with pytest.raises(IndexError, match=r"\(2, 0\).*2 layers x 3 heads"):
        rw.ablate_heads(c, [(2, 0)])


def test_random_draws_are_distinct_heads_of_the_pool_and_repeatable():
    pool = {(l, h): ("x", 1.0) for l in range(2) for h in range(8)}
    draws = rw.random_head_draws(pool, 5, 30, seed=3)
    assert draws == rw.random_head_draws(pool, 5, 30, seed=3) and draws != rw.random_head_draws(pool, 5, 30, seed=4)
    assert all(len(set(d)) == 5 and set(d) <= set(pool) for d in draws)
    assert len({tuple(sorted(d)) for d in draws}) > 20
    with pytest.raises(ValueError, match="k=17"):
        rw.random_head_draws(pool, 17, 1)


def _planted_world(n_per_group=10):
    """Two classes, one layer of three heads: head 0 writes the shape, head 1 the colour (more strongly), head 2 noise.
    The class embeddings are the two shape directions, so a plain classifier follows the colour."""
    g = torch.Generator().manual_seed(0)
    shape, typical = [], []
    for s in range(2):
        shape += [s] * 2 * n_per_group
        typical += [True] * n_per_group + [False] * n_per_group
    shape, typical = torch.tensor(shape), torch.tensor(typical)
    colour_class = torch.where(typical, shape, 1 - shape)
    e = torch.eye(4)
    heads = torch.stack([e[shape], 1.5 * e[colour_class], 0.05 * torch.randn(len(shape), 4, generator=g)], dim=1)
    c = HeadContributions(heads=heads[:, None], cls=torch.zeros(len(shape), 1, 4), mlp=torch.zeros(len(shape), 2, 4),
                          labels=shape)
    groups = 2 * shape + (~typical).long()
    data = rw.GroupedScenes([None] * len(shape), {"shape": shape, "colour": colour_class}, typical, groups)
    roles = {(0, 0): ("shape", 1.0), (0, 1): ("colour", 0.8), (0, 2): ("size", 0.6)}
    return c, data, e[:2], roles


def test_spurious_report_finds_the_planted_cue_and_its_controls():
    c, data, classifier, roles = _planted_world()
    rep = rw.spurious_report(c, data, classifier, roles, n_draws=30)
    plain, fixed = rep["plain zero-shot"], rep["colour heads ablated"]
    assert plain["worst"] == 0.0 and fixed["worst"] == 1.0 and fixed["heads"] == [(0, 1)]
    assert rep["shape heads ablated"]["per_group"].tolist() == [1.0, 0.0, 1.0, 0.0]  # only colour is left
    rand = rep["random heads ablated"]
    assert rand["worst_min"] == 0.0 and rand["worst_max"] == 1.0 and 0.0 < rand["worst"] < 1.0
    with pytest.raises(ValueError, match="no head is labelled 'texture'"):
        rw.spurious_report(c, data, classifier, roles, spurious="texture")


def test_precision_at_k_never_retrieves_the_query_and_counts_matches():
    emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.8, 0.2]])
    values = torch.tensor([0, 0, 1, 1, 1])
    p = rw.precision_at_k(emb, values, k=1)
    assert p.tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]  # image 4 is nearest to the class-0 pair
    assert rw.precision_at_k(emb, values, k=2)[4].item() == 0.0
    with pytest.raises(ValueError, match="k=5 needs 0 < k < N=5"):
        rw.precision_at_k(emb, values, k=5)


def test_chance_is_what_a_random_ranking_scores():
    values = torch.tensor([0, 0, 0, 1, 1, 2])
    assert rw.chance_precision(values) == pytest.approx((3 * 2 + 2 * 1) / (6 * 5))
    g = torch.Generator().manual_seed(0)
    many = torch.arange(400) % 4
    random_rankings = torch.stack([rw.precision_at_k(torch.randn(400, 32, generator=g), many, 10).mean() for _ in range(5)])
    assert abs(random_rankings.mean().item() - rw.chance_precision(many)) < 0.02


def test_role_embeddings_see_only_their_heads():
    c = _contributions()
    emb = rw.role_embeddings(c, [(1, 0)])
    assert torch.allclose(emb, c.heads[:, 1, 0] / c.heads[:, 1, 0].norm(dim=-1, keepdim=True))
    with pytest.raises(ValueError, match="no heads given"):
        rw.role_embeddings(c, [])


def test_token_norms_have_a_row_per_residual_stream_and_a_column_per_token():
    from course_utils import models
    model = models.build("ToyCLIP", seed=0).float()
    images = torch.randn(2, 3, 64, 64)
    norms = rw.token_norms(model.visual, images)
    v = model.visual
    assert norms.shape == (len(v.transformer.resblocks) + 1, 1 + (64 // v.conv1.kernel_size[0]) ** 2)
    assert (norms > 0).all()


@pytest.fixture(scope="module")
def measured():
    """Notebook 09's offline experiments at the notebook's sizes, on the bundled ToyCLIP."""
    import clip

    from course_utils import pools
    from course_utils import textspan as ts
    from course_utils.decompose import head_contributions
    from course_utils.models import load_toyclip
    from course_utils.zero_shot import encode_texts
    model, _ = load_toyclip("cpu")
    model = model.float()
    pre = clip.clip._transform(model.visual.input_resolution)
    texts, props = pools.load_pool("toy")
    scenes = [(s.image, 0) for s in tw.scenes(500)]
    c = head_contributions(model, scenes, pre, batch_size=100, progress=False)
    roles = ts.property_shares(ts.textspan_all(c, encode_texts(model, texts), texts, layers=[4, 5], n_texts=5), props)
    classifier = torch.nn.functional.normalize(encode_texts(model, rw.spurious_prompts()), dim=-1)
    data = rw.spurious_test_set(50)
    cd = head_contributions(model, [(im, 0) for im in data.images], pre, batch_size=100, progress=False)
    gallery = rw.retrieval_gallery(5)
    cg = head_contributions(model, [(im, 0) for im in gallery.images], pre, batch_size=100, progress=False)
    return rw.spurious_report(cd, data, classifier, roles), rw.retrieval_table(cg, gallery, roles)


def test_ablating_the_colour_heads_removes_the_cue_on_toyclip(measured):
    rep, _ = measured
    plain, fixed = rep["plain zero-shot"], rep["colour heads ablated"]
    assert fixed["worst"] >= plain["worst"] + 0.10
    assert fixed["worst"] >= rep["random heads ablated"]["worst"] + 0.05
    assert abs(fixed["average"] - plain["average"]) <= 0.03
    assert rep["shape heads ablated"]["worst"] < plain["worst"]  # the task's own heads: ablating them hurts


def test_retrieval_by_a_role_beats_the_full_embedding_on_its_property(measured):
    _, table = measured
    for role in ("colour", "shape"):
        assert table[f"{role} heads"][role] >= 0.8
        assert table[f"{role} heads"][role] > table["full embedding"][role]
    assert table["chance"]["colour"] == pytest.approx(49 / 499)  # 50 of each colour among 500
