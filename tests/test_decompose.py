import pytest
import torch
import torch.nn.functional as F

from course_utils.decompose import decompose, head_contributions
from course_utils.heatmaps import token_maps
from course_utils.inside_vit import trace_vit
from course_utils import models
from course_utils.models import load_toyclip, model_info, random_clip


@pytest.fixture(scope="module")
def b32():
    return random_clip("ViT-B/32").float()


def _check_architecture(model, batch=2):
    info = model_info(model)
    images = torch.randn(batch, 3, info.image_resolution, info.image_resolution, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model.encode_image(images)
        trace = trace_vit(model, images)
        assert len(trace.residuals) == info.layers + 1
        assert trace.attn_probs[0].shape == (batch, info.heads, info.grid**2 + 1, info.grid**2 + 1)
        torch.testing.assert_close(trace.embedding, expected, atol=1e-5, rtol=1e-5)
    dec = decompose(model, images)
    assert dec.attn.shape == (batch, info.layers, info.grid**2 + 1, info.heads, info.embed_dim)
    assert dec.mlp.shape == (batch, info.layers + 1, info.embed_dim)
    rel = (dec.total() - expected).norm(dim=-1) / expected.norm(dim=-1)
    assert rel.max() < 1e-5, f"decomposition misses encode_image by {rel.max():.2e} (relative)"
    unit = decompose(model, images, normalize=True)
    torch.testing.assert_close(unit.total(), F.normalize(expected, dim=-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(unit.attn * expected.norm(dim=-1)[:, None, None, None, None], dec.attn, atol=1e-4, rtol=1e-4)
    return images, dec


def test_trace_and_decomposition_are_exact_b32(b32):
    _check_architecture(b32)


def test_trace_and_decomposition_are_exact_b16():
    _check_architecture(random_clip("ViT-B/16").float(), batch=1)


def test_decomposition_is_exact_l14():
    _check_architecture(random_clip("ViT-L/14").float(), batch=1)


def test_decomposition_is_exact_toyclip():
    model, _ = load_toyclip("cpu")
    _check_architecture(model.float(), batch=2)


def test_decomposition_can_fail():
    """The check above is not vacuous: dropping the β share of each part breaks the sum."""
    model, _ = load_toyclip("cpu")
    images = torch.randn(1, 3, 64, 64)
    dec = decompose(model.float(), images)
    with torch.no_grad():
        expected = model.float().encode_image(images)
    broken = dec.attn[:, :, 1:].sum(dim=(1, 2, 3)) + dec.mlp.sum(dim=1)  # forgets the CLS source token
    assert ((broken - expected).norm() / expected.norm()) > 1e-3


@pytest.mark.parametrize("normalize", [False, True])
def test_head_contributions_match_the_decomposition(b32, normalize):
    images = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    dec = decompose(b32, images, normalize=normalize)
    batches = [(images[:2], torch.tensor([4, 5])), (images[2:], torch.tensor([6]))]  # a plain iterable: no preallocation
    c = head_contributions(b32, batches, normalize=normalize, progress=False)
    assert c.heads.shape == (3, 12, 12, 512) and c.cls.shape == (3, 12, 512) and c.mlp.shape == (3, 13, 512)
    assert c.labels.tolist() == [4, 5, 6]
    torch.testing.assert_close(c.heads, dec.heads(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(c.cls, dec.attn[:, :, 0].sum(dim=2), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(c.total(), dec.embedding, atol=1e-4, rtol=1e-4)


def test_head_contributions_from_a_dataset_fp16():
    from course_utils.toyworld import ToyShapes

    model, preprocess = load_toyclip("cpu")
    ds = ToyShapes(train=False, n=10)
    c = head_contributions(model, ds, preprocess, batch_size=4, fp16=True, progress=False)
    assert c.heads.dtype == torch.float16 and c.heads.shape == (10, models.ARCHITECTURES[models.TOYCLIP]["vision_layers"],
                                                    models.ARCHITECTURES[models.TOYCLIP]["vision_heads"], 64)
    with torch.no_grad():
        expected = F.normalize(model.encode_image(torch.stack([preprocess(ds[i][0]) for i in range(10)])), dim=-1)
    torch.testing.assert_close(c.total(), expected, atol=5e-3, rtol=0)  # fp16 storage: ~3 significant digits
    assert c.labels.tolist() == [ds[i][1] for i in range(10)]


@pytest.mark.parametrize("convention", ["paper", "centred"])
def test_head_contributions_stream_to_disk_and_reopen(tmp_path, convention):
    """store=folder: the same numbers as in memory, read back from files, reopened later; nothing left open."""
    from course_utils.decompose import load_head_contributions

    model, _ = load_toyclip("cpu")
    model = model.float()
    images = torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    batches = [(images[:2], torch.tensor([1, 2])), (images[2:], torch.tensor([3, 4, 5]))]
    in_memory = head_contributions(model, batches, convention=convention, progress=False)
    on_disk = head_contributions(model, batches, convention=convention, progress=False, store=tmp_path / "c")
    for name in ("heads", "cls", "mlp", "labels"):
        assert torch.equal(getattr(on_disk, name), getattr(in_memory, name)), name
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["cls.bin", "heads.bin", "labels.bin", "meta.json",
                                                                  "mlp.bin"]
    reopened = load_head_contributions(tmp_path / "c")
    assert torch.equal(reopened.heads, in_memory.heads) and reopened.labels.tolist() == [1, 2, 3, 4, 5]
    reopened.heads[0] = 0  # copy-on-write: the file keeps its values
    assert torch.equal(load_head_contributions(tmp_path / "c").heads, in_memory.heads)
    with pytest.raises(FileNotFoundError, match="store="):
        load_head_contributions(tmp_path / "nothing here")
    with pytest.raises(ValueError, match="no batches"):
        head_contributions(model, [], progress=False, store=tmp_path / "empty")
    # writing again into the same folder: the old meta.json goes first, so a failed rerun can't be reopened as finished
    with pytest.raises(ValueError, match="expects images"):
        head_contributions(model, [(images[:2], torch.tensor([1, 2])), (images[0], torch.tensor([3]))],
                           progress=False, store=tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="meta.json not found"):
        load_head_contributions(tmp_path / "c")


def test_conventions_sum_exactly_and_bad_conventions_are_named(b32):
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = b32.encode_image(images)
    parts = {c: decompose(b32, images, convention=c) for c in ("paper", "centred")}
    for dec in parts.values():
        torch.testing.assert_close(dec.total(), expected, atol=1e-4, rtol=1e-4)
    gap = (parts["paper"].heads() - parts["centred"].heads()).norm() / parts["paper"].heads().norm()
    assert gap > 1e-3  # two different attributions of the same sum
    with pytest.raises(ValueError, match="convention='authors'.*'paper'"):
        decompose(b32, images, convention="authors")
    with pytest.raises(ValueError, match="head_contributions: convention"):
        head_contributions(b32, [(images, torch.zeros(2))], convention="centered", progress=False)


def test_token_maps_shape(b32):
    maps = token_maps(b32, torch.randn(2, 3, 224, 224), torch.randn(5, 512))
    assert maps.shape == (2, 5, 224, 224)


def test_trace_rejects_wrong_images(b32):
    with pytest.raises(ValueError, match="expects images \\[B, 3, H, W\\]"):
        trace_vit(b32, torch.randn(3, 224, 224))
    with pytest.raises(ValueError, match="64 px but the model expects 224 px"):
        trace_vit(b32, torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize("edit", ["in place", "replaced"])
def test_remembered_head_readouts_follow_weight_edits(edit):
    """decompose remembers W_O,h G per model; an edited or replaced weight must not leave a stale copy behind."""
    model = random_clip("ViT-B/32").float()
    images = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    for convention in ("paper", "centred"):
        decompose(model, images, convention=convention)  # fills the cache
        with torch.no_grad():
            block = model.visual.transformer.resblocks[-1]
            if edit == "in place":
                block.attn.out_proj.weight.mul_(1.5)
                model.visual.ln_post.weight.add_(0.25)
            else:
                block.attn.out_proj.weight = torch.nn.Parameter(block.attn.out_proj.weight * 0.5)
            expected = model.encode_image(images)
        got = decompose(model, images, convention=convention).total()
        assert (got - expected).norm() / expected.norm() < 1e-5, convention


@pytest.mark.parametrize("normalize", [False, True])
def test_unfolded_decompose_is_decompose_in_the_authors_order(normalize):
    """Projecting every head-token term from the residual width gives the same parts as the folded computation."""
    from course_utils.decompose import decompose, unfolded_decompose
    from course_utils.models import TOYCLIP, build
    model = build(TOYCLIP, seed=2).float().eval()
    with torch.no_grad():  # LayerNorm and bias values away from their initial ones, as after training
        for block in model.visual.transformer.resblocks:
            block.attn.out_proj.bias.normal_(0, 0.1)
        model.visual.ln_post.weight.uniform_(0.5, 1.5)
        model.visual.ln_post.bias.normal_(0, 0.1)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(unfolded_decompose(model, images, normalize),
                               decompose(model, images, normalize, convention="paper").attn, atol=1e-5, rtol=1e-4)
