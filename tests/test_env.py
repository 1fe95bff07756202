
import pytest
import torch

from course_utils import assets, env


def test_forced_offline(monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    assert env.is_offline() and env.forced_offline()
    monkeypatch.setenv("COURSE_OFFLINE", "0")
    assert not env.forced_offline()


def test_network_check_fails_fast_on_a_closed_port(monkeypatch):
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.setattr(env, "NETWORK_CHECK_HOST", ("127.0.0.1", 9))  # discard port: nothing listens here
    env._network_reachable.cache_clear()
    try:
        assert env.is_offline()
    finally:
        env._network_reachable.cache_clear()


def test_device_and_override(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        expected = "mps"
    assert env.get_device().type == expected
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert env.get_device() == torch.device("cpu")


def test_seed_everything_repeats():
    env.seed_everything(3)
    a = torch.rand(4)
    env.seed_everything(3)
    assert torch.equal(a, torch.rand(4))


class Loaded:
    def __init__(self, real, name):
        self.course_asset = assets.Provenance(real, name, "cache" if real else "bundled", True)


def test_banner_names_mode_what_was_loaded_device_and_versions(capsys):
    assert env.banner(Loaded(False, "ToyCLIP"), Loaded(False, "ToyShapes")) == "offline"
    line = capsys.readouterr().out.strip()
    assert line.startswith("[Inside CLIP] OFFLINE") and "ToyCLIP (bundled, SHA-256 verified)" in line
    assert str(env.get_device()) in line and torch.__version__ in line
    assert env.banner(Loaded(True, "ViT-B/32"), Loaded(True, "CIFAR-100")) == "real"
    assert capsys.readouterr().out.startswith("[Inside CLIP] REAL mode")
    assert env.banner(Loaded(True, "ViT-B/32"), Loaded(False, "ToyShapes")) == "mixed"
    assert "MIXED" in capsys.readouterr().out
    assert env.banner() is None and "needs no CLIP" in capsys.readouterr().out
    assert not env.in_colab()


def test_mode_is_never_guessed():
    with pytest.raises(ValueError, match="what was loaded, not the network"):
        env.mode()
    with pytest.raises(ValueError, match="carries no provenance"):
        env.is_real(torch.nn.Linear(2, 2))
