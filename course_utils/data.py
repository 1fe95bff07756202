"""Data: CIFAR-100 through the asset cache (real mode). The offline toy set arrives with ToyCLIP."""
from __future__ import annotations

import tarfile

from . import assets, env

CIFAR_FOLDER = "cifar-100-python"  # what the archive unpacks to; torchvision's CIFAR100 reads it from root


def _extract_once(archive, root) -> None:
    if (root / CIFAR_FOLDER / "test").is_file() and (root / CIFAR_FOLDER / "meta").is_file():
        return
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(root, filter="data")  # "data" filter: no absolute paths, no links out of root


def load_cifar100(train: bool = False, transform=None):
    """torchvision's CIFAR100 (`.classes`, `ds[i] -> (PIL image, label)`), fetched once into the cache.

    Offline with no cached archive, this raises `assets.AssetUnavailable` saying what to do.
    """
    if env.forced_offline():
        raise assets.AssetUnavailable(
            "load_cifar100() needs the real CIFAR-100, but COURSE_OFFLINE=1 is set. Unset COURSE_OFFLINE to "
            "download it (about 160 MiB), or copy cifar-100-python.tar.gz into the cache: "
            f"{assets.local_path('cifar-100-python')}."
        )
    from torchvision.datasets import CIFAR100  # imported late: torchvision is slow to import

    archive = assets.fetch("cifar-100-python")
    root = archive.parent
    _extract_once(archive, root)
    return CIFAR100(root=str(root), train=train, download=False, transform=transform)
