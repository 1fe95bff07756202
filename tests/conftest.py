import warnings

import matplotlib
import pytest
import torch

matplotlib.use("Agg")  # unit tests draw off-screen; notebook kernels keep their inline backend

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty asset cache for one test."""
    path = tmp_path / "cache"
    monkeypatch.setenv("COURSE_CACHE", str(path))
    return path


@pytest.fixture
def online(monkeypatch):
    """Pretend the network check succeeds (downloads in tests use file:// or loopback URLs only)."""
    from course_utils import env

    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.setattr(env, "_network_reachable", lambda: True)


@pytest.fixture(scope="session")
def random_state_dicts(tmp_path_factory):
    """Random-weight openai-architecture state dicts, stored in fp16 like openai's checkpoints."""
    from course_utils.models import random_clip

    folder = tmp_path_factory.mktemp("state_dicts")
    paths = {}
    for name in ("ViT-B/32", "ViT-B/16", "ViT-L/14"):
        model = random_clip(name)
        path = folder / (name.replace("/", "-") + ".pt")
        torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, path)
        paths[name] = path
        del model
    return paths
