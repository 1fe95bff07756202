import hashlib

import pytest
import torch

from course_utils import assets
from course_utils.models import load_clip, model_info, random_clip

import clip

EXPECTED = {  # the published architectures (CLIP paper, table 20)
    "ViT-B/32": dict(layers=12, heads=12, width=768, patch_size=32, grid=7, embed_dim=512, image_resolution=224),
    "ViT-B/16": dict(layers=12, heads=12, width=768, patch_size=16, grid=14, embed_dim=512, image_resolution=224),
    "ViT-L/14": dict(layers=24, heads=16, width=1024, patch_size=14, grid=16, embed_dim=768, image_resolution=224),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_load_clip_from_local_state_dict(name, random_state_dicts):
    model, preprocess = load_clip(random_state_dicts[name], device="cpu")
    assert model_info(model).as_dict() == EXPECTED[name]
    assert next(model.parameters()).dtype == torch.float32  # fp16 checkpoint, fp32 on CPU
    with torch.inference_mode():
        image = torch.randn(2, 3, 224, 224)
        text = clip.tokenize(["a photo of a cat", "a dog"])
        assert model.encode_image(image).shape == (2, EXPECTED[name]["embed_dim"])
        assert model.encode_text(text).shape == (2, EXPECTED[name]["embed_dim"])
    # the loaded weights are the saved ones (fp16-rounded)
    saved = torch.load(random_state_dicts[name], weights_only=True)
    assert torch.equal(model.visual.proj.detach(), saved["visual.proj"].float())
    from PIL import Image

    assert preprocess(Image.new("RGB", (300, 200))).shape == (3, 224, 224)


def test_real_mode_path_downloads_verifies_and_loads(random_state_dicts, monkeypatch, cache, online):
    """load_clip('ViT-B/32') end to end: registry -> download (file://) -> checksum -> build_model."""
    src = random_state_dicts["ViT-B/32"]
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    monkeypatch.setitem(assets.REGISTRY, "ViT-B/32", assets.Asset("ViT-B/32", src.as_uri(), sha, "ViT-B-32.pt", None, "test"))
    model, _ = load_clip("ViT-B/32", device="cpu")
    assert model_info(model).grid == 7 and (cache / "ViT-B-32.pt").is_file()


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'ViT-H/14'.*ViT-B/32"):
        load_clip("ViT-H/14", device="cpu")
    with pytest.raises(ValueError, match="ResNet CLIP"):
        load_clip("RN50", device="cpu")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file at .*nope.pt"):
        load_clip(tmp_path / "nope.pt", device="cpu")


def test_not_a_clip_state_dict(tmp_path):
    path = tmp_path / "linear.pt"
    torch.save(torch.nn.Linear(3, 4).state_dict(), path)
    with pytest.raises(ValueError, match="not an openai CLIP ViT state dict"):
        load_clip(path, device="cpu")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(ValueError, match="not a CLIP checkpoint"):
        load_clip(junk, device="cpu")


def test_model_info_rejects_non_vit():
    with pytest.raises(ValueError, match="vision transformer"):
        model_info(torch.nn.Linear(2, 2))


def test_random_clip_unknown_name():
    with pytest.raises(ValueError, match="random_clip knows"):
        random_clip("ViT-g/14")


def test_openai_name_without_network_or_cache_falls_back_to_toyclip(monkeypatch, cache, capsys):
    from course_utils import env

    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.setattr(env, "_network_reachable", lambda: False)
    model, _ = load_clip("ViT-L/14", device="cpu")
    assert model_info(model).grid == 8
    assert "ToyCLIP" in capsys.readouterr().out
    assert model.course_asset.real is False and "instead of ViT-L/14: not cached and no network" in model.course_asset.detail


def test_failed_download_falls_back_with_the_reason_in_the_banner(monkeypatch, cache, online, capsys):
    monkeypatch.setitem(assets.REGISTRY, "ViT-B/16",
                        assets.Asset("ViT-B/16", "http://127.0.0.1:9/ViT-B-16.pt", "0" * 64, "ViT-B-16.pt", 1, "test"))
    model, _ = load_clip("ViT-B/16", device="cpu")
    assert model_info(model).grid == 8  # ToyCLIP
    out = capsys.readouterr().out
    assert "download failed" in out and "ToyCLIP" in out
    assert not model.course_asset.real and model.course_asset.detail.startswith("instead of ViT-B/16: download failed")
