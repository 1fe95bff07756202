import hashlib

import pytest

from course_utils import assets, env


def _register(tmp_path, monkeypatch, content: bytes, sha=None, name="tiny"):
    src = tmp_path / "upstream" / f"{name}.bin"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(content)
    asset = assets.Asset(name, src.as_uri(), sha or hashlib.sha256(content).hexdigest(), f"{name}.bin", len(content), "test")
    monkeypatch.setitem(assets.REGISTRY, name, asset)
    return src


def test_registry_entries_are_complete():
    for name, a in assets.REGISTRY.items():
        assert len(a.sha256) == 64 and int(a.sha256, 16) >= 0 and a.license, name
        if a.bundled:  # shipped in the repository: present and intact
            assert assets.sha256_of(assets.local_path(name)) == a.sha256, name
        else:
            assert a.url.startswith("https://") and a.size_bytes, name
    # openai names each checkpoint's folder after its SHA-256
    for name in ("ViT-B/32", "ViT-B/16", "ViT-L/14"):
        assert assets.get(name).sha256 in assets.get(name).url


def test_fetch_downloads_verifies_and_reuses_the_cache(tmp_path, monkeypatch, cache, online):
    src = _register(tmp_path, monkeypatch, b"weights" * 1000)
    path = assets.fetch("tiny")
    assert path.read_bytes() == src.read_bytes() and path.parent == cache
    src.unlink()  # upstream gone: the verified cached copy is enough
    assert assets.fetch("tiny") == path and assets.is_cached("tiny")


def test_corrupt_cache_is_detected_and_fetched_again(tmp_path, monkeypatch, cache, online, capsys):
    src = _register(tmp_path, monkeypatch, b"good bytes")
    path = assets.fetch("tiny")
    path.write_bytes(b"bad bytes!")
    assert not assets.is_cached("tiny")
    assert assets.fetch("tiny").read_bytes() == src.read_bytes()
    assert "corrupt" in capsys.readouterr().out


def test_corrupt_cache_offline_is_deleted_and_explained(tmp_path, monkeypatch, cache):
    _register(tmp_path, monkeypatch, b"good bytes")
    (cache / "tiny.bin").parent.mkdir(parents=True, exist_ok=True)
    (cache / "tiny.bin").write_bytes(b"truncated")
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(assets.AssetUnavailable, match="COURSE_OFFLINE=1.*copy it to"):
        assets.fetch("tiny")
    assert not (cache / "tiny.bin").exists()


def test_checksum_mismatch_on_download_leaves_nothing_behind(tmp_path, monkeypatch, cache, online):
    _register(tmp_path, monkeypatch, b"changed upstream", sha="0" * 64)
    with pytest.raises(assets.ChecksumMismatch, match="expected 0000"):
        assets.fetch("tiny")
    assert list(cache.iterdir()) == []


def test_unreachable_url_raises_asset_unavailable(monkeypatch, cache, online):
    asset = assets.Asset("dead", "http://127.0.0.1:9/x.bin", "0" * 64, "x.bin", 1, "test")
    monkeypatch.setitem(assets.REGISTRY, "dead", asset)
    with pytest.raises(assets.AssetUnavailable, match="Could not download 'dead'"):
        assets.fetch("dead")


def test_unknown_asset_lists_known_ones():
    with pytest.raises(KeyError, match="Known assets: .*ViT-B/32"):
        assets.get("ViT-H/14")


def test_offline_message_says_what_to_do(monkeypatch, cache):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(assets.AssetUnavailable) as err:
        assets.fetch("ViT-B/32")
    msg = str(err.value)
    assert "COURSE_OFFLINE=1" in msg and assets.get("ViT-B/32").url in msg and str(cache) in msg
    assert env.is_offline()
