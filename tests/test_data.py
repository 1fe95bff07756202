import hashlib
import io
import pickle
import tarfile


from course_utils import assets
from course_utils.data import load_cifar100


def test_offline_returns_the_toy_set(monkeypatch, cache):
    from course_utils.toyworld import ToyShapes

    monkeypatch.setenv("COURSE_OFFLINE", "1")
    ds = load_cifar100(train=False)
    assert isinstance(ds, ToyShapes) and len(ds.classes) == 100 and len(ds) == 2000


def _fake_cifar_archive(path, n=6):
    """A tiny archive in CIFAR-100's python format: the real archive's layout, made-up pixels."""
    import numpy as np

    rng = np.random.default_rng(0)
    names = [f"class_{i}" for i in range(100)]
    members = {
        "cifar-100-python/meta": {"fine_label_names": names, "coarse_label_names": [f"super_{i}" for i in range(20)]},
        "cifar-100-python/test": {"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), "fine_labels": list(range(n)),
                                  "coarse_labels": [0] * n},
        "cifar-100-python/train": {"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), "fine_labels": [7] * n,
                                   "coarse_labels": [0] * n},
    }
    with tarfile.open(path, "w:gz") as tar:
        for member, obj in members.items():
            blob = pickle.dumps(obj)
            info = tarfile.TarInfo(member)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def test_real_mode_goes_through_the_cache_and_torchvision(tmp_path, monkeypatch, cache, online):
    import torchvision.datasets.cifar as tv_cifar

    archive = tmp_path / "cifar-100-python.tar.gz"
    _fake_cifar_archive(archive)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(assets.REGISTRY, "cifar-100-python",
                        assets.Asset("cifar-100-python", archive.as_uri(), sha, "cifar-100-python.tar.gz", None, "test"))
    # torchvision also md5-checks the unpacked files against the real CIFAR-100; ours are made up.
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    ds = load_cifar100(train=False)
    assert len(ds) == 6 and len(ds.classes) == 100 and ds.classes[3] == "class_3"
    image, label = ds[3]
    assert image.size == (32, 32) and image.mode == "RGB" and label == 3
    assert len(load_cifar100(train=True)) == 6  # second call: already unpacked, no new download
