"""Data: CIFAR-100 through the asset cache (real mode), or the toy world's ToyShapes (offline mode)."""
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

    In offline mode (COURSE_OFFLINE=1, or no network and no cached archive) it returns the toy world's
    ToyShapes instead: the same interface, 100 classes, and a banner saying so.
    """
    reason = "COURSE_OFFLINE=1"
    if not env.forced_offline():
        try:
            archive = assets.fetch("cifar-100-python")  # cached and verified, or downloaded now
        except assets.AssetUnavailable as err:
            reason = "not cached and no network" if env.is_offline() else f"download failed: {err}"
        else:
            from torchvision.datasets import CIFAR100  # imported late: torchvision is slow to import

            _extract_once(archive, archive.parent)
            return CIFAR100(root=str(archive.parent), train=train, download=False, transform=transform)
    from .toyworld import ToyShapes

    env.announce_offline(f"load_cifar100() -> ToyShapes, the toy world's 100 colour x shape classes ({reason})")
    return ToyShapes(train=train, transform=transform)
