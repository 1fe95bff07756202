
import torch

from course_utils import env


def test_forced_offline(monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    assert env.is_offline() and env.forced_offline() and env.mode() == "offline"
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


def test_banner_names_mode_device_and_versions(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    line = env.banner()
    assert "OFFLINE" in line and "ToyCLIP" in line and str(env.get_device()) in line and torch.__version__ in line
    assert capsys.readouterr().out.strip() == line
    assert "needs no CLIP" in env.banner(uses_assets=False)
    assert not env.in_colab()
