import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from course_utils import assets, contrastive, models, toyclip, zero_shot
from course_utils import toyworld as tw
from course_utils.data import pil_batch, to_input
from course_utils.inside_vit import attention_heads, patch_tokens, run_blocks
from course_utils.legrad import layer_score, legrad
from course_utils.models import clip, load_clip, load_toyclip, model_info

TOY_HEADS = models.ARCHITECTURES[models.TOYCLIP]["vision_heads"]


def test_training_smoke_loss_falls_and_is_deterministic():
    """A shortened run of the real training loop (CI budget: well under 60 s), twice with the same seed."""
    kw = dict(steps=40, batch_size=32, n_scenes=640, out=None, log_every=1000, eval_every=0, aux_token_mean=0.0,
              aux_patches=0.0, foils=False, property_captions=0.0)  # the plain CLIP loss; the next test covers the rest
    model, losses = toyclip.train(**kw)
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    model2, losses2 = toyclip.train(**kw)
    assert losses == losses2, "same seed, same machine: training must repeat exactly"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))



def test_each_auxiliary_objective_changes_training_and_training_stays_deterministic():
    """The bundled recipe's extra terms (token-mean readout, patches as class prompts, foils, one-property captions,
    the head objective and its terms), each changed from its default."""
    kw = dict(steps=30, batch_size=32, n_scenes=320, out=None, log_every=1000, eval_every=0)
    model, losses = toyclip.train(**kw)  # the defaults: both objectives, foils, 15% one-property captions, head objective
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5]), losses
    assert losses != toyclip.train(**{**kw, "aux_token_mean": 0.0})[1]  # each option changes training
    assert losses != toyclip.train(**{**kw, "aux_patches": 0.0})[1]
    assert losses != toyclip.train(**{**kw, "foils": False})[1]
    assert losses != toyclip.train(**{**kw, "property_captions": 0.5})[1]
    assert losses != toyclip.train(**{**kw, "background_patches": True})[1]
    assert losses != toyclip.train(**{**kw, "patch_blocks": 2})[1]
    with_legrad = toyclip.train(**{**kw, "aux_legrad": 1.0})[1]
    assert losses != with_legrad
    assert with_legrad != toyclip.train(**{**kw, "aux_legrad": 1.0, "legrad_smooth": 10.0})[1]
    for term, other in (("aux_heads", 0.0), ("head_purity", 0.0), ("head_truth", 0.0), ("head_look", 0.0),
                        ("head_apart", 1.0), ("head_text", True), ("head_from", 0.2)):  # the head objective, its terms
        assert losses != toyclip.train(**{**kw, term: other})[1], term
    assert losses == toyclip.train(**kw)[1]
    centred, centred_losses = toyclip.train(**{**kw, "centre_text": True})
    assert centred_losses == losses  # the centring comes after the last step and edits the text projection only
    plain = model.state_dict()
    assert [k for k, v in centred.state_dict().items() if not torch.equal(v, plain[k])] == ["text_projection"]
    with pytest.raises(ValueError, match="patch_blocks=7, but ToyCLIP's image tower has 6 blocks"):
        toyclip.train(**{**kw, "patch_blocks": 7})
    with pytest.raises(ValueError, match="head_from=1500, but it is a share of the 30 steps; use 0 to 1"):
        toyclip.train(**{**kw, "head_from": 1500})
    images = to_input(pil_batch(tw.random_scene(i).image for i in range(3)))
    with torch.no_grad():
        embedding, token_mean, patches = toyclip.image_readouts(model.eval(), images, patch_blocks=2)
        *_, last = run_blocks(model.visual, images)
        torch.testing.assert_close(embedding, model.encode_image(images), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(token_mean, layer_score(model.visual, last[-1]), atol=1e-5, rtol=1e-5)
        assert patches.shape == (2, 3, 64, model.visual.proj.shape[1])  # the last block's patches first
        visual = model.visual
        torch.testing.assert_close(patches[0], visual.ln_post(last[-1][:, 1:]) @ visual.proj, atol=1e-5, rtol=1e-5)

def test_centre_text_space_takes_out_the_direction_every_class_prompt_shares():
    model = models.build(models.TOYCLIP, seed=0).eval()
    before = zero_shot.zero_shot_classifier(model, tw.CLASSES)  # [100, d], unit rows
    u = torch.nn.functional.normalize(before.mean(dim=0), dim=0)
    report = toyclip.centre_text_space(model)
    assert report["class_mean_norm_before"] > 0.1 and report["class_mean_norm_after"] < 0.1 * report["class_mean_norm_before"]
    assert (model.text_projection @ u).abs().max() < 1e-5  # nothing along u is left in any text embedding
    after = zero_shot.zero_shot_classifier(model, tw.CLASSES)
    # and nothing else changes: each embedding is the old one with its u component removed, renormalised
    expected = torch.nn.functional.normalize(before - (before @ u)[:, None] * u, dim=-1)
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=1e-5)


def test_centre_command_writes_a_centred_copy_and_never_overwrites_its_input(tmp_path):
    out = tmp_path / "centred.pt"
    command = [sys.executable, "-m", "course_utils.toyclip", "centre", "--out"]
    proc = subprocess.run(command + [str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["class_mean_norm_after"] < 0.05 < report["class_mean_norm_before"]
    model, _ = load_clip(out, device="cpu")
    mean = zero_shot.zero_shot_classifier(model, tw.CLASSES).float().mean(dim=0)
    assert mean.norm() < 0.05  # the copy loads and is centred (fp16 weights, as saved)
    refused = subprocess.run(command + [str(toyclip.CHECKPOINT)], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "is the input checkpoint" in refused.stderr


def test_patch_labels_mark_the_patches_an_object_covers():
    scene = tw.draw_scene([dict(color="red", shape="square", size="large", region=(0, 0)),
                           dict(color="blue", shape="circle", size="large", region=(1, 1))], seed=3)
    labels = toyclip.patch_labels(scene, 8).reshape(8, 8)
    red, blue = tw.CLASSES.index("red_square"), tw.CLASSES.index("blue_circle")
    assert (labels[:4, :4] != blue).all() and (labels[4:, 4:] != red).all()
    assert (labels == red).sum() >= 4 and (labels == blue).sum() >= 4 and (labels[:4, 4:] == -1).all()
    for obj, lab in zip(scene.objects, (red, blue)):  # every labelled patch is at least half covered
        cover = obj.mask.reshape(8, 8, 8, 8).mean(axis=(1, 3))
        assert (cover[labels == lab] >= 0.5).all()
    # background=True: patches no object touches read as the scene's background, after the 100 classes
    with_bg = toyclip.patch_labels(scene, 8, background=True).reshape(8, 8)
    white = len(tw.CLASSES) + list(tw.BACKGROUNDS).index("white")
    touched = sum(o.mask.reshape(8, 8, 8, 8).any(axis=(1, 3)) for o in scene.objects) > 0
    assert (with_bg[~touched] == white).all() and (~touched).sum() >= 10
    assert (with_bg[touched] == labels[touched]).all()  # objects and their edges as before


def test_patch_loss_is_cross_entropy_over_labelled_patches_only():
    torch.manual_seed(0)
    patches, classes, scale = torch.randn(2, 4, 8), torch.randn(5, 8), torch.tensor(1.5)
    labels = torch.tensor([[0, -1, 3, -1], [-1, -1, 4, 1]])
    logits = scale.exp() * torch.nn.functional.normalize(patches, dim=-1) @ torch.nn.functional.normalize(classes, dim=-1).T
    keep = labels >= 0
    by_hand = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    torch.testing.assert_close(toyclip.patch_loss(patches, labels, classes, scale), by_hand)


def test_training_scenes_do_not_depend_on_the_number_of_drawing_processes():
    one = toyclip.make_training_set(40, twin_fraction=0.5, workers=1)
    two = toyclip.make_training_set(40, twin_fraction=0.5, workers=2)
    assert all(torch.equal(a, b) for a, b in zip(one, two))
    with pytest.raises(ValueError, match="even number"):
        toyclip.make_training_set(41)


def test_twin_scenes_differ_in_one_named_property():
    for seed in range(20):
        a, b = toyclip.twin_pair(np.random.default_rng(seed), 1 + seed % 3)
        assert [(o.color, o.shape) for o in a.objects] == [(o.color, o.shape) for o in b.objects]
        assert a.background == b.background and a.caption != b.caption
        moved = [o.region for o in a.objects] != [o.region for o in b.objects]
        resized = [o.size for o in a.objects] != [o.size for o in b.objects]
        assert moved != resized  # exactly one property changed
        for scene in (a, b):  # and both captions name it, for every object
            for o in scene.objects:
                named = rf"{o.size} ({o.pattern} )?{o.color} {o.shape}" if resized else o.position
                assert re.search(named, scene.caption), (named, scene.caption)


def test_foil_captions_change_one_named_property_of_one_object():
    size_words, position_words = set(tw.SIZES), {w for p in tw.POSITIONS.values() for w in p.split()}
    pattern_words = set(tw.PATTERNS)
    kinds = set()
    with_foil = 0
    for seed in range(60):
        scene = tw.random_scene(seed)
        caption, foil = toyclip.foil_caption(scene, np.random.default_rng(seed))
        assert (caption, foil) == toyclip.foil_caption(scene, np.random.default_rng(seed))  # reproducible
        words = caption.split()
        names_size, names_position = bool(size_words & set(words)), " at the " in caption or " in the " in caption
        names_pattern = bool(pattern_words & {w.strip(",") for w in words})
        if not (names_size or names_position or names_pattern):
            assert foil == "", (caption, foil)
            continue
        with_foil += 1
        changed = [(a.strip(","), b.strip(",")) for a, b in zip(words, foil.split()) if a != b]
        assert len(words) == len(foil.split()) and changed, (caption, foil)
        kind = [k for k, ws in (("size", size_words), ("position", position_words), ("pattern", pattern_words))
                if all({a, b} <= ws for a, b in changed)]
        assert len(kind) == 1, (caption, foil)
        kinds.add(kind[0])
        if kind[0] != "position":
            assert len(changed) == 1, (caption, foil)  # one object's size or pattern
    assert 30 <= with_foil < 60  # most captions name size, position or pattern, some name none of them
    assert kinds == {"size", "position", "pattern"}


def test_property_captions_name_one_true_property_and_nothing_else():
    words = {"colour": set(tw.COLORS), "shape": set(tw.SHAPES), "size": set(tw.SIZES),
             "position": {w for p in tw.POSITIONS.values() for w in p.split()},
             "count": {tw.COUNT_WORDS[n] for n in (1, 2, 3)}, "pattern": set(tw.PATTERNS)}
    seen = set()
    for seed in range(150):
        scene = tw.random_scene(seed)
        prop, caption = toyclip.property_caption(scene, np.random.default_rng([seed, 7]))
        assert (prop, caption) == toyclip.property_caption(scene, np.random.default_rng([seed, 7]))  # reproducible
        seen.add(prop)
        named = {p for p, ws in words.items() if ws & set(caption.split())}
        assert named == {prop}, (prop, caption)  # one property, and the one it says it names
        o = scene.objects
        true = dict(colour={x.color for x in o}, shape={x.shape for x in o}, size={x.size for x in o},
                    position={x.position for x in o}, count={tw.COUNT_WORDS[len(o)]},
                    pattern={x.pattern for x in o})[prop]
        assert any(v in caption for v in true), (caption, scene.caption)  # true of one of the scene's objects
        if prop == "count":
            assert caption.endswith("thing" if len(o) == 1 else "things"), caption
    assert seen == set(words)
    # in the training set: the share asked for, the same images, and the default recipe's captions untouched
    base = toyclip.make_training_set(400, foils=True)
    mixed = toyclip.make_training_set(400, foils=True, property_captions=0.3)
    changed = (base[1] != mixed[1]).any(dim=1)
    assert torch.equal(base[0], mixed[0]) and 0.2 < changed.float().mean() < 0.4
    assert not mixed[3][changed].any()  # a one-property caption has no foil
    assert torch.equal(base[3][~changed], mixed[3][~changed])


def test_foil_loss_ranks_foils_below_the_caption_and_only_on_the_image_side():
    torch.manual_seed(0)
    img, txt, foil, scale = torch.randn(4, 8), torch.randn(4, 8), torch.randn(3, 8), torch.tensor(2.0)
    norm = torch.nn.functional.normalize
    logits = scale.exp() * norm(img, dim=-1) @ norm(torch.cat([txt, foil]), dim=-1).T  # [4, 7]
    target = torch.arange(4)
    by_hand = (torch.nn.functional.cross_entropy(logits, target) +
               torch.nn.functional.cross_entropy(logits[:, :4].T, target)) / 2
    torch.testing.assert_close(toyclip.foil_clip_loss(img, txt, foil, scale), by_hand)
    assert toyclip.foil_clip_loss(img, txt, foil, scale) > contrastive.clip_loss(img, txt, scale)
    matched = txt + 0.1 * torch.randn(4, 8)  # images that match their captions
    close = txt[:3] + 0.01 * torch.randn(3, 8)  # foils almost equal to their captions: much harder
    assert toyclip.foil_clip_loss(matched, txt, close, scale) > 3 * toyclip.foil_clip_loss(matched, txt, foil, scale)


def test_foil_preference_reads_size_and_pattern_but_not_position_in_the_bundled_model():
    """The model card's measure: the bundled ToyCLIP ranks a caption above its size or pattern foil far above chance,
    and above its position foil only near chance (its embedding does not carry position; see data/README.md)."""
    model, _ = load_toyclip("cpu")
    result = toyclip.foil_preference(model, n_scenes=300)
    assert result["foils"] > 200 and result["size"] > 0.7 and result["pattern"] > 0.7, result
    assert 0.35 < result["position"] < 0.65, result


def test_clip_loss_is_symmetric_infonce():
    torch.manual_seed(0)
    img, txt, scale = torch.randn(6, 8), torch.randn(6, 8), torch.tensor(2.0)
    logits = scale.exp() * torch.nn.functional.normalize(img, dim=-1) @ torch.nn.functional.normalize(txt, dim=-1).T
    by_hand = (torch.nn.functional.cross_entropy(logits, torch.arange(6)) +
               torch.nn.functional.cross_entropy(logits.T, torch.arange(6))) / 2
    torch.testing.assert_close(contrastive.clip_loss(img, txt, scale), by_hand)
    assert contrastive.clip_loss(img, img, torch.tensor(4.0)) < contrastive.clip_loss(img, txt, torch.tensor(4.0))


def test_short_context_text_encoder_is_exact():
    model = models.build(models.TOYCLIP).eval()
    tokens = clip.tokenize(["a red circle", "three shapes: a small blue star and a large gray ring"])
    masks = [block.attn_mask for block in model.transformer.resblocks]
    with torch.no_grad():
        full = model.encode_text(tokens)
        short = zero_shot.encode_text_short(model, tokens[:, : toyclip.TRAIN_CONTEXT])
        with pytest.raises(RuntimeError):  # a failure half-way through must not leave the short masks behind
            zero_shot.encode_text_short(model, torch.zeros(2, 5, 3, dtype=torch.long))
    torch.testing.assert_close(short, full, atol=1e-5, rtol=1e-5)
    assert all(block.attn_mask is m for block, m in zip(model.transformer.resblocks, masks))
    torch.testing.assert_close(model.encode_text(tokens), full)


def test_builders_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = models.build(models.TOYCLIP, seed=0)
    models.random_clip("ViT-B/32", seed=0)
    assert torch.equal(torch.rand(3), expected), "a builder reseeded the global generator"
    b = models.build(models.TOYCLIP, seed=0)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_training_inputs_match_clip_preprocess():
    _, preprocess = load_toyclip(device="cpu")
    image = tw.random_scene(5).image
    ours = to_input(torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy())[None])[0]
    torch.testing.assert_close(preprocess(image), ours, atol=1e-5, rtol=0)


def test_bundled_checkpoint_is_registered_and_loads():
    path = assets.fetch("toyclip")
    assert path == toyclip.CHECKPOINT and assets.sha256_of(path) == assets.get("toyclip").sha256
    assert path.stat().st_size <= 25e6
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint[models.ARCHITECTURE_KEY] == models.TOYCLIP  # the marker that tells the loader the head split
    sd = checkpoint["state_dict"]
    assert all(v.dtype == torch.float16 for k, v in sd.items() if v.is_floating_point())
    model, preprocess = load_clip("toy", device="cpu")
    info = model_info(model)
    assert (info.image_resolution, info.patch_size, info.grid, info.embed_dim) == (64, 8, 8, 64)
    assert info.heads == TOY_HEADS == 8
    assert model.token_embedding.num_embeddings == 49408 and model.context_length == 77
    assert type(model) is clip.model.CLIP


def test_why_load_clip_does_not_call_clip_load_on_state_dicts():
    """openai-clip 1.0.1's clip.load tries torch.jit.load on the open file, then torch.load on the *same, consumed*
    handle without rewinding it; with torch 2.14 that fails for every plain state dict (it only reads TorchScript
    archives, which can't be loaded with weights_only=True). course_utils therefore runs the body of clip.load's
    jit=False branch itself: clip.model.build_model + the same preprocess. If this test starts failing, upstream has
    fixed the bug and load_clip could call clip.load directly."""
    with pytest.raises(EOFError):
        clip.load(str(toyclip.CHECKPOINT), device="cpu", jit=False)
    ours, _ = load_clip("toy", device="cpu")
    reference = clip.model.build_model(torch.load(toyclip.CHECKPOINT, weights_only=True)["state_dict"]).float()
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), reference.state_dict().values()))
    # build_model can't know ToyCLIP's head count (the weights have the same shape for any split): load_clip sets it
    assert reference.visual.transformer.resblocks[0].attn.num_heads == models.ARCHITECTURES["ToyCLIP"]["vision_width"] // 64
    x = to_input(pil_batch([tw.random_scene(1).image]))
    with torch.no_grad():
        wrong = reference.encode_image(x)
        right = models.set_vision_heads(reference, TOY_HEADS).encode_image(x)
        torch.testing.assert_close(ours.encode_image(x), right)
    assert not torch.allclose(wrong, right, atol=1e-3)


def test_the_head_split_comes_from_the_marker_not_the_shapes(tmp_path):
    """A checkpoint with ToyCLIP's shapes but no marker is built the way clip.load builds it (width // 64 heads);
    the same weights with the marker get ToyCLIP's 8 heads; an unknown marker is refused with a clear error."""
    sd = torch.load(toyclip.CHECKPOINT, weights_only=True)["state_dict"]
    torch.save(sd, tmp_path / "plain.pt")
    plain, _ = load_clip(str(tmp_path / "plain.pt"), device="cpu")
    assert model_info(plain).heads == 2
    torch.save({models.ARCHITECTURE_KEY: models.TOYCLIP, "state_dict": sd}, tmp_path / "marked.pt")
    assert model_info(load_clip(str(tmp_path / "marked.pt"), device="cpu")[0]).heads == TOY_HEADS
    torch.save({models.ARCHITECTURE_KEY: "ViT-Z/99", "state_dict": sd}, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match="'ViT-Z/99' checkpoint, an architecture this course does not know"):
        load_clip(str(tmp_path / "odd.pt"), device="cpu")


def test_corrupted_checkpoint_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "toyclip.pt"
    data = bytearray(toyclip.CHECKPOINT.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(assets, "ROOT", tmp_path.parent)
    monkeypatch.setitem(assets.REGISTRY, "toyclip",
                        assets.Asset("toyclip", "x", assets.get("toyclip").sha256, "toyclip.pt", None, "test",
                                     bundled=f"{tmp_path.name}/toyclip.pt"))
    with pytest.raises(assets.ChecksumMismatch, match="bundled 'toyclip' .* is corrupt.*git checkout"):
        load_clip("toy", device="cpu")


def test_offline_fallbacks_in_a_fresh_process():
    code = (
        "import time; t = time.perf_counter()\n"
        "from course_utils.models import load_clip, model_info\n"
        "from course_utils.data import load_cifar100\n"
        "import clip, torch, json\n"
        "model, preprocess = load_clip('ViT-B/32')\n"
        "ds = load_cifar100()\n"
        "image, label = ds[0]\n"
        "with torch.no_grad():\n"
        "    e = model.encode_image(preprocess(image)[None]); t_ = model.encode_text(clip.tokenize(['a red circle']))\n"
        "print(json.dumps(dict(grid=model_info(model).grid, classes=len(ds.classes), shapes=[list(e.shape), list(t_.shape)])))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env={"COURSE_OFFLINE": "1", "PATH": ""},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert json.loads(lines[-1]) == dict(grid=8, classes=100, shapes=[[1, 64], [1, 64]])
    notices = [line for line in lines if line.startswith("[Inside CLIP] substitution")]
    assert len(notices) == 2 and "ToyCLIP" in notices[0] and "ToyShapes" in notices[1]


def test_bundled_model_meets_the_acceptance_figures():
    """The fair-comparison issue's bars for `toyclip evaluate`, all met by ToyCLIP v3 (its model card), TextSpan's
    premise included: its confirmed role heads cover colour, shape and pattern."""
    result = toyclip.evaluate()
    assert result["zero_shot_top1"] >= 0.97 and result["zero_shot_top5"] >= 0.99, result
    assert result["pointing_game"] >= 0.90 and result["pointing_game_objects"] >= 500, result
    assert result["pointing_game_tolerance_px"] == 4 and result["pointing_game_strict"] >= 0.90, result
    # reading order decides only the objects whose map peaks on a plateau: random ties differ by at most their share
    objects, plateaus = result["pointing_game_objects"], result["pointing_game_plateaus"]
    assert 0 < plateaus < objects, result  # v3's maps peak on border patches too
    assert abs(result["pointing_game_strict"] - result["pointing_game_strict_random_ties"]) <= plateaus / objects, result
    assert result["checkpoint_mb"] <= 25 and result["n_test_images"] >= 2000, result
    met = result["meets"]
    assert all(met.values()) and set(met) == set(result["bars"]), met
    assert set(result["role_heads_confirmed"]) <= set(result["role_heads"]), result
    assert len(result["role_heads_confirmed"]) >= 6 and result["textspan_premise_by_texts"], result
    assert set(result["role_properties_confirmed"]) == {"colour", "shape", "pattern"}, result
    # the properties with confirmed heads are the ones the pool's texts can fill a list with (the role ceiling)
    assert {p for p, share in result["role_ceiling"].items() if share >= 0.8} == {"colour", "shape", "pattern"}, result


def test_block_with_heads_is_the_block_and_keeps_each_heads_cls_share_and_attention():
    """The head objective's forward pass: the same block output, each head's share of the CLS update, and CLS's
    attention, all checked against the block and the course's attention written out."""
    model = models.build(models.TOYCLIP, 0).eval()
    block = model.visual.transformer.resblocks[-1]
    images = to_input(pil_batch(tw.random_scene(i).image for i in range(3)))
    with torch.no_grad():
        x = patch_tokens(model.visual, images).permute(1, 0, 2)  # [N, B, D]
        out, (heads, look, mid, values) = toyclip.block_with_heads(block, x)
        torch.testing.assert_close(out, block(x), atol=1e-5, rtol=1e-5)
        y = block.ln_1(x)
        update = block.attn(y, y, y, need_weights=False)[0][0]  # [B, D]: the attention's update at CLS
        torch.testing.assert_close(heads.sum(1) + block.attn.out_proj.bias, update, atol=1e-5, rtol=1e-5)
        probs, v = attention_heads(y.permute(1, 0, 2), block.attn.in_proj_weight, block.attn.in_proj_bias, TOY_HEADS)
        torch.testing.assert_close(look, probs[:, :, 0], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(mid, x + block.attn(y, y, y, need_weights=False)[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(values, v, atol=1e-6, rtol=1e-5)


def _legrad_model():
    """A random ToyCLIP whose LayerNorm weights and biases are not at their initial values (1 and 0), so that the
    written-out LayerNorm gradient is checked where it matters."""
    torch.manual_seed(0)
    model = models.build(models.TOYCLIP, 0).eval()
    with torch.no_grad():
        for name, p in model.visual.named_parameters():
            if "ln_" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model


def test_legrad_relevance_is_legrads_own_map_written_without_autograd():
    """train's aux_legrad trains what course_utils.legrad computes: the relevance of the last two blocks, summed and
    upsampled as legrad does, equals legrad's unnormalised map, for several (image, prompt) pairs of one batch."""
    model = _legrad_model()
    visual = model.visual
    images = to_input(pil_batch(tw.random_scene(i).image for i in range(3)))
    texts = torch.nn.functional.normalize(torch.randn(4, visual.proj.shape[1]), dim=-1)
    image_of = torch.tensor([0, 0, 1, 2])
    with torch.no_grad():
        *_, inside = toyclip.image_readouts(model, images, head_blocks=2)
        relevance = sum(toyclip.legrad_relevance(visual, *parts, texts, image_of) for parts in inside)  # [4, 64]
    assert relevance.shape == (4, 64) and (relevance >= 0).all()
    grid = relevance.view(4, 1, 8, 8)
    upsampled = torch.nn.functional.interpolate(grid, size=images.shape[-2:], mode="bilinear", align_corners=False)
    for m in range(4):
        reference = legrad(model, images[image_of[m]], texts[m][None], normalize=False)[0]
        torch.testing.assert_close(upsampled[m, 0], reference, atol=1e-5 * float(reference.abs().max()), rtol=1e-4)


def test_smooth_relu_tends_to_relu_scales_with_its_input_and_keeps_a_gradient_below_zero():
    """legrad_smooth's surrogate for LeGrad's ReLU."""
    torch.manual_seed(0)
    x = torch.randn(3, 50)
    relu = x.clamp(min=0)
    sharp = toyclip.smooth_relu(x, 1e4, dims=1)
    assert float((sharp - relu).abs().max()) < 1e-3 * float(x.abs().mean())
    assert float((toyclip.smooth_relu(x, 10.0, dims=1) - relu).abs().max()) > 1e-2  # a real change at k = 10
    torch.testing.assert_close(toyclip.smooth_relu(7.0 * x, 10.0, dims=1), 7.0 * toyclip.smooth_relu(x, 10.0, dims=1))
    # every entry negative: ReLU's share of the first five is 0 / 0 with no gradient; the surrogate's is a softmax
    negative = (-1.0 - x.abs()[:1]).requires_grad_()  # every entry at least 0.5 s below zero
    soft = toyclip.smooth_relu(negative, 10.0, dims=1)
    share = soft[0, :5].sum() / soft.sum()
    share.backward()
    assert (negative.grad[0, :5] > 0).all() and (negative.grad[0, 5:] <= 0).all()
    s = negative.detach().abs().mean()
    torch.testing.assert_close(share.detach(), torch.softmax(10.0 * negative.detach()[0] / s, 0)[:5].sum(),
                               rtol=0.01, atol=0.0)  # far below zero, softplus(z) ~ exp(z)


def test_legrad_relevance_smoothed_tends_to_legrads_own():
    model = _legrad_model()
    images = to_input(pil_batch(tw.random_scene(i).image for i in range(2)))
    texts = torch.nn.functional.normalize(torch.randn(3, model.visual.proj.shape[1]), dim=-1)
    image_of = torch.tensor([0, 1, 1])
    with torch.no_grad():
        *_, inside = toyclip.image_readouts(model, images, head_blocks=2)
        exact = sum(toyclip.legrad_relevance(model.visual, *parts, texts, image_of) for parts in inside)
        sharp = sum(toyclip.legrad_relevance(model.visual, *parts, texts, image_of, smooth=1e5) for parts in inside)
        soft = sum(toyclip.legrad_relevance(model.visual, *parts, texts, image_of, smooth=10.0) for parts in inside)
    torch.testing.assert_close(sharp, exact, atol=1e-3 * float(exact.max()), rtol=0)
    assert (soft > exact).all()  # softplus lies above the ReLU everywhere


def test_legrad_loss_is_one_minus_the_relevance_share_on_each_present_object():
    """legrad_loss, by hand: one pair per (image, class with labelled patches); background labels (>= C) and images
    without objects bring none; the loss is 1 - the pair's relevance on its class's patches over all its relevance."""
    model = _legrad_model()
    visual = model.visual
    scenes = [tw.random_scene(i) for i in range(4)]
    images = to_input(pil_batch(s.image for s in scenes))
    labels = torch.tensor(np.stack([toyclip.patch_labels(s, 8) for s in scenes])).long()
    labels[3] = -1  # an image without labelled objects
    labels[2, :5] = len(tw.CLASSES) + 1  # background_patches' labels: not objects
    class_text = torch.randn(len(tw.CLASSES), visual.proj.shape[1])
    with torch.no_grad():
        *_, inside = toyclip.image_readouts(model, images, head_blocks=2)
        loss = float(toyclip.legrad_loss(visual, inside, labels, class_text))
        shares = []
        for b in range(3):
            for c in sorted(set(labels[b].tolist()) - {-1, len(tw.CLASSES) + 1}):
                texts = torch.nn.functional.normalize(class_text[c], dim=-1)[None]
                rel = sum(toyclip.legrad_relevance(visual, *parts, texts, torch.tensor([b])) for parts in inside)[0]
                shares.append(float(rel[labels[b] == c].sum() / rel.sum()))
    assert len(shares) >= 3
    assert abs(loss - (1 - np.mean(shares))) < 1e-5 and 0 < loss < 1


def _head_batch(n=48, seed=0):
    """Scenes, their value counts split per property, and their patch labels: head_loss's inputs from the toy world."""
    scenes = [tw.random_scene(seed + i) for i in range(n)]
    counts = torch.tensor(np.stack([toyclip.value_counts(s) for s in scenes])).float()
    ends = np.cumsum([len(v) for v in toyclip.COUNTED_PROPERTIES.values()]).tolist()
    split = {p: counts[:, e - len(v):e] for (p, v), e in zip(toyclip.COUNTED_PROPERTIES.items(), ends)}
    labels = torch.tensor(np.stack([toyclip.patch_labels(s, 8) for s in scenes])).long()
    return scenes, split, labels


def test_value_counts_count_each_property_of_each_object():
    scenes, split, _ = _head_batch()
    for b, scene in enumerate(scenes):
        for p, values in toyclip.COUNTED_PROPERTIES.items():
            assert split[p][b].sum() == len(scene.objects)
        words = dict(colour=[o.color for o in scene.objects], pattern=[o.pattern for o in scene.objects])
        for p, seen in words.items():
            assert {toyclip.COUNTED_PROPERTIES[p][i] for i in split[p][b].nonzero()[:, 0].tolist()} == set(seen)


def test_each_term_of_the_head_objective_is_zero_exactly_where_its_heads_do_what_it_asks():
    """head_loss's ground-truth and look terms, each isolated by switching the others off: zero for heads whose
    contribution is a linear function of their property's counts and whose CLS attention lies on the objects; large
    for random heads with attention spread over the image."""
    torch.manual_seed(0)
    model = models.build(models.TOYCLIP, 0).eval()
    visual = model.visual
    scenes, split, labels = _head_batch()
    B, D, H = len(scenes), visual.proj.shape[0], TOY_HEADS
    N = labels.shape[1] + 1
    d = visual.proj.shape[1]
    role_text = {p: torch.nn.functional.normalize(torch.randn(len(split[p][0]), d), dim=-1)
                 for p in set(toyclip.HEAD_ROLES.values())}
    final_cls = torch.randn(D).expand(B, D)  # one variance for all: the readout's scale is the same for every scene
    linear = torch.zeros(1, B, H, D)
    for h, prop in toyclip.HEAD_ROLES.items():
        linear[0, :, h] = split[prop] @ torch.randn(split[prop].shape[1], D)  # [B, D]: a function of the counts
    random = torch.randn(1, B, H, D)
    on = (labels >= 0).float()
    on_objects = torch.cat([torch.zeros(B, 1), on / on.sum(1, keepdim=True).clamp(min=1)], dim=1)  # [B, N]
    looks_on = on_objects[None, :, None].expand(1, B, H, N)
    looks_spread = torch.full((1, B, H, N), 1 / N)

    def term(heads, looks, **weight):
        kw = dict(purity=0.0, truth=0.0, look=0.0)
        with torch.no_grad():
            base = toyclip.head_loss(heads, final_cls, visual, split, role_text, model.logit_scale, looks, labels, **kw)
            return float(toyclip.head_loss(heads, final_cls, visual, split, role_text, model.logit_scale, looks,
                                           labels, **{**kw, **weight}) - base)

    assert abs(term(linear, looks_on, truth=1.0)) < 1e-4  # R² = 1 on the one-object scenes
    assert term(random, looks_on, truth=1.0) > 0.5  # noise: R² small
    assert abs(term(linear, looks_on, look=1.0)) < 1e-6  # all of CLS's attention on object patches
    seen = on.sum(1) > 0
    spread = float((1 - on[seen].sum(1) / N).mean())  # what uniform attention leaves off the objects
    assert abs(term(linear, looks_spread, look=1.0) - spread) < 1e-5 and spread > 0.5
    assert 0 < term(random, looks_on, purity=1.0) <= 1.0  # random directions lie mostly outside a property's span


def test_the_apart_term_is_the_share_of_each_role_head_inside_the_other_roles_spans():
    """head_loss's apart term alone: 0 when every property's text span is orthogonal to what the heads write, 1 when
    each span contains all of it."""
    torch.manual_seed(0)
    model = models.build(models.TOYCLIP, 0).eval()
    visual = model.visual
    scenes, split, labels = _head_batch(n=6)  # 6 scenes: the heads' batch-centred contributions span <= 5 directions
    B, D, H = len(scenes), visual.proj.shape[0], TOY_HEADS
    heads, final_cls = torch.randn(1, B, 1, D).expand(1, B, H, D), torch.randn(D).expand(B, D)  # every head the same
    with torch.no_grad():  # what head_loss reads: each head through ln_post's scale and proj, centred over the batch
        sigma = (final_cls.var(dim=-1, unbiased=False, keepdim=True) + visual.ln_post.eps).sqrt()
        c = ((heads - heads.mean(-1, keepdim=True)) / sigma[None, :, None] * visual.ln_post.weight) @ visual.proj
        c = (c - c.mean(dim=1, keepdim=True)).flatten(0, 2)  # [B * H, d]
    written = torch.linalg.svd(c.T, full_matrices=False)[0][:, :5]  # [d, 5]: every role head's contribution
    d = written.shape[0]
    rest = torch.linalg.svd(torch.eye(d) - written @ written.T)[0][:, : d - 5]  # [d, d - 5]: orthogonal to them
    looks = torch.zeros(1, B, H, labels.shape[1] + 1)

    def apart(spans):  # role texts whose V - 1 centred directions lie in spans[V - 1] [d, V - 1]
        texts = {}
        for p in set(toyclip.HEAD_ROLES.values()):
            V = split[p].shape[1]
            rows = torch.randn(V, V - 1) @ spans[V - 1].T
            texts[p] = torch.nn.functional.normalize(rows - rows.mean(0), dim=-1)
        kw = dict(purity=0.0, truth=0.0, look=0.0)
        with torch.no_grad():
            base = toyclip.head_loss(heads, final_cls, visual, split, texts, model.logit_scale, looks, labels, **kw)
            with_term = toyclip.head_loss(heads, final_cls, visual, split, texts, model.logit_scale, looks, labels,
                                          **kw, apart=1.0)
        return float(with_term - base)  # the mean over the role heads of their share in the other roles' spans

    assert abs(apart({9: rest[:, :9], 5: rest[:, 9:14]})) < 1e-5
    padded = torch.cat([written, rest[:, :4]], dim=1)  # [d, 9]: colour and shape have 9 directions, pattern 5
    assert abs(apart({9: padded, 5: written}) - 1) < 1e-4
