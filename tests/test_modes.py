"""The mode is what was loaded: every cache/network combination, a failed download, and a half-real course.

Each case checks the banner's first words, what it says about each asset, and the content a notebook then picks
(`env.is_real` of the model and of the dataset: notebook 06 chooses its description pool by the model and its images
by the dataset, notebook 03 labels its results by both). Stand-in files go through the real checksum path: their
SHA-256 is registered for the test, as COURSE_ASSETS lets an instructor do.
"""
import hashlib
import json

import pytest
import torch

from course_utils import assets, env
from course_utils.data import load_cifar100
from course_utils.models import load_clip, model_info


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory, random_state_dicts):
    """A ViT-B/32 checkpoint (random weights) and a tiny CIFAR-100 archive, with their SHA-256."""
    from course_utils.rehearsal import build_cifar100_archive

    folder = tmp_path_factory.mktemp("stand_ins")
    archive = folder / "cifar-100-python.tar.gz"
    build_cifar100_archive(archive, n_train=10, n_test=20)
    files = {"ViT-B/32": random_state_dicts["ViT-B/32"], "cifar-100-python": archive}
    return {name: (path, hashlib.sha256(path.read_bytes()).hexdigest()) for name, path in files.items()}


def register(monkeypatch, stand_ins, url_folder=None):
    """Register the stand-ins' checksums (and, for downloads, a file:// URL to fetch them from)."""
    for name, (path, sha) in stand_ins.items():
        url = path.as_uri() if url_folder is None else (url_folder / path.name).as_uri()
        asset = assets.REGISTRY[name]
        monkeypatch.setitem(assets.REGISTRY, name, assets.Asset(name, url, sha, asset.filename, None, "test"))


def put_in_cache(cache, stand_ins, names=("ViT-B/32", "cifar-100-python")):
    cache.mkdir(parents=True, exist_ok=True)
    for name in names:
        (cache / assets.REGISTRY[name].filename).write_bytes(stand_ins[name][0].read_bytes())


def vouch_for(monkeypatch, cache, stand_ins, tmp_path):
    """Cache the stand-ins under their registered names and vouch for them with a COURSE_ASSETS file."""
    put_in_cache(cache, stand_ins)
    table = {name: {"sha256": sha, "note": "test stand-in"} for name, (_, sha) in stand_ins.items()}
    (tmp_path / "assets.json").write_text(json.dumps(table))
    monkeypatch.setenv("COURSE_ASSETS", str(tmp_path / "assets.json"))


def network(monkeypatch, up: bool, tripwire: bool = False):
    """Network check result; with tripwire, any download attempt fails the test."""
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.setattr(env, "_network_reachable", lambda: up)
    if tripwire:
        def no_download(*args, **kwargs):
            raise AssertionError("a cached, verified file must not be downloaded again")
        monkeypatch.setattr(assets, "_download", no_download)


def load_and_banner(capsys):
    model, _ = load_clip(device="cpu")
    data = load_cifar100(train=False)
    capsys.readouterr()
    mode = env.banner(model, data)
    return mode, capsys.readouterr().out, model, data


@pytest.mark.parametrize("network_up", [True, False], ids=["network", "no-network"])
def test_cached_real_assets_are_real_mode_with_or_without_network(monkeypatch, cache, capsys, stand_ins, network_up):
    """The workshop case (cached the night before, wifi down) is REAL mode, not offline."""
    register(monkeypatch, stand_ins)
    put_in_cache(cache, stand_ins)
    network(monkeypatch, network_up, tripwire=True)
    mode, line, model, data = load_and_banner(capsys)
    assert mode == "real" and line.startswith("[Inside CLIP] REAL mode")
    assert "ViT-B/32 (from cache, SHA-256 verified)" in line and "CIFAR-100 (from cache, SHA-256 verified)" in line
    assert env.is_real(model) and env.is_real(data) and model_info(model).grid == 7 and len(data) == 20


def test_nothing_cached_network_up_downloads_and_is_real(monkeypatch, cache, capsys, stand_ins):
    register(monkeypatch, stand_ins, url_folder=None)
    network(monkeypatch, True)
    mode, line, model, data = load_and_banner(capsys)
    assert mode == "real" and "ViT-B/32 (downloaded, SHA-256 verified)" in line and "CIFAR-100 (downloaded" in line
    assert (cache / "ViT-B-32.pt").is_file()


def test_nothing_cached_no_network_is_offline_and_says_why(monkeypatch, cache, capsys, stand_ins):
    register(monkeypatch, stand_ins)
    network(monkeypatch, False)
    mode, line, model, data = load_and_banner(capsys)
    assert mode == "offline" and line.startswith("[Inside CLIP] OFFLINE mode")
    assert "ToyCLIP (bundled, SHA-256 verified; instead of ViT-B/32: not cached and no network)" in line
    assert "ToyShapes (drawn by the course; instead of CIFAR-100: not cached and no network)" in line
    assert not env.is_real(model) and not env.is_real(data) and model_info(model).grid == 8


def test_failed_download_is_offline_never_real(monkeypatch, cache, capsys, stand_ins, tmp_path):
    """The network answers but the files can't be had: the numbers must not be labelled real."""
    register(monkeypatch, stand_ins, url_folder=tmp_path / "nowhere")
    network(monkeypatch, True)
    mode, line, model, data = load_and_banner(capsys)
    assert mode == "offline" and "instead of ViT-B/32: download failed" in line
    assert "instead of CIFAR-100: download failed" in line and "REAL" not in line


def test_half_real_is_mixed_and_names_the_substitute(monkeypatch, cache, capsys, stand_ins):
    """Real weights cached but no CIFAR-100: the notebook picks its content per asset."""
    register(monkeypatch, stand_ins)
    put_in_cache(cache, stand_ins, names=("ViT-B/32",))
    network(monkeypatch, False)
    mode, line, model, data = load_and_banner(capsys)
    assert mode == "mixed" and line.startswith("[Inside CLIP] MIXED mode")
    assert "ViT-B/32 (from cache" in line and "ToyShapes (drawn by the course; instead of CIFAR-100" in line
    assert env.is_real(model) and not env.is_real(data)


def test_course_assets_override_is_real_but_unverified(monkeypatch, cache, capsys, stand_ins, tmp_path):
    """What the rehearsal and an instructor's own checkpoint use: a checksum vouched for by COURSE_ASSETS."""
    vouch_for(monkeypatch, cache, stand_ins, tmp_path)
    network(monkeypatch, False, tripwire=True)
    mode, line, model, data = load_and_banner(capsys)
    assert mode == "real" and "ViT-B/32 (from cache, unverified; checksum from COURSE_ASSETS: test stand-in)" in line


def test_course_model_names_a_local_checkpoint(monkeypatch, capsys, random_state_dicts):
    monkeypatch.setenv("COURSE_MODEL", str(random_state_dicts["ViT-B/16"]))
    model, _ = load_clip(device="cpu")
    env.banner(model)
    line = capsys.readouterr().out
    assert model_info(model).grid == 14 and env.is_real(model)
    assert "REAL mode" in line and "local file, unverified" in line and str(random_state_dicts["ViT-B/16"]) in line


def test_bad_course_assets_file_is_named(monkeypatch, tmp_path):
    (tmp_path / "bad.json").write_text('{"ViT-Z/1": {"sha256": "00"}}')
    monkeypatch.setenv("COURSE_ASSETS", str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match="bad.json: entry 'ViT-Z/1' must name a known asset"):
        assets.get("ViT-B/32")


def test_make_fetch_reports_a_ready_cache_without_network(monkeypatch, cache, capsys, stand_ins, tmp_path):
    """`make fetch` (assets.main): with the files cached it needs no network and says where they are."""
    vouch_for(monkeypatch, cache, stand_ins, tmp_path)
    network(monkeypatch, False, tripwire=True)
    assert assets.main(["ViT-B/32", "cifar-100-python"]) == 0
    out = capsys.readouterr().out
    assert f"✓ ViT-B/32 (from cache, unverified; checksum from COURSE_ASSETS: test stand-in): {cache}" in out
    assert f"cache folder: {cache}" in out and "without a network" in out


def test_make_fetch_without_network_or_cache_says_what_is_missing(monkeypatch, cache, capsys):
    network(monkeypatch, False)
    assert assets.main(["ViT-B/32"]) == 1
    out = capsys.readouterr().out
    assert "✗ ViT-B/32" in out and "not in the cache" in out and "1 asset(s) missing: ViT-B/32" in out
