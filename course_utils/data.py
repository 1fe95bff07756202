"""Data: CIFAR-100 through the asset cache (real mode) or the toy world's ToyShapes (offline mode), and batching.

    load_cifar100     torchvision's CIFAR100, or ToyShapes offline (same interface)
    superclasses      CIFAR-100's 20 coarse groups (or the toy world's)
    pil_batch, to_input, Collate   PIL images -> the normalised tensors the model reads
"""
from __future__ import annotations

import pickle
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from . import assets, env
from . import toyworld as tw

# openai CLIP's input normalisation (what clip.load's preprocess applies after resizing), per RGB channel.
MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073])
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711])

CIFAR_FOLDER = "cifar-100-python"  # what the archive unpacks to; torchvision's CIFAR100 reads it from root


def _extract_once(archive, root, sha256: str) -> None:
    """Unpack the archive into root/cifar-100-python once; again only if the archive changed (its SHA-256 differs)."""
    stamp = root / CIFAR_FOLDER / ".extracted-from-sha256"
    if stamp.is_file() and stamp.read_text().strip() == sha256:
        return
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(root, filter="data")  # "data" filter: no absolute paths, no links out of root
    stamp.write_text(sha256)


def _open_cifar100(root: str, train: bool, transform):
    """torchvision's CIFAR100 on an archive whose SHA-256 `assets` has already checked.

    torchvision also checks each unpacked file's MD5 against the official ones; that would refuse an archive the
    instructor vouched for through COURSE_ASSETS (e.g. the real-mode rehearsal's synthetic one), so it is skipped:
    the whole archive was verified before it was unpacked.
    """
    from torchvision.datasets import CIFAR100  # imported late: torchvision is slow to import

    class VerifiedCIFAR100(CIFAR100):
        def _check_integrity(self) -> bool:
            return True

        def _load_meta(self) -> None:
            with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

    return VerifiedCIFAR100(root=root, train=train, download=False, transform=transform)


def load_cifar100(train: bool = False, transform=None):
    """torchvision's CIFAR100 (`.classes`, `ds[i] -> (PIL image, label)`), fetched once into the cache.

    In offline mode (COURSE_OFFLINE=1, or not cached and not downloadable) it returns the toy world's ToyShapes
    instead: the same interface, 100 classes. `dataset.course_asset` (an `assets.Provenance`) says which it is.

    Taught in: notebook 03, "The course notes' zero-shot cells, one by one".
    """
    reason = "COURSE_OFFLINE=1"
    if not env.forced_offline():
        try:
            archive, provenance = assets.obtain("cifar-100-python")  # cached and verified, or downloaded now
        except assets.AssetUnavailable as err:
            reason = "not cached and no network" if env.is_offline() else f"download failed: {err}"
        else:
            _extract_once(archive, archive.parent, assets.get("cifar-100-python").sha256)
            dataset = _open_cifar100(str(archive.parent), train, transform)
            dataset.course_asset = replace(provenance, name="CIFAR-100")
            return dataset
    env.announce_substitution(f"load_cifar100() -> ToyShapes, the toy world's 100 colour x shape classes ({reason})")
    dataset = tw.ToyShapes(train=train, transform=transform)
    dataset.course_asset = assets.Provenance(False, "ToyShapes", "drawn", True, f"instead of CIFAR-100: {reason}")
    return dataset


# CIFAR-100's 20 superclasses ("coarse labels"), 5 fine classes each, as listed on the dataset's page.
CIFAR100_SUPERCLASSES = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}


def superclasses(dataset):
    """(superclass names, [C] superclass index of each class) for CIFAR-100 or ToyShapes.

    Taught in: notebook 03, "Where does it fail?".
    """
    if list(dataset.classes) == list(tw.CLASSES):
        groups = [tw.superclass_of(i) for i in range(len(dataset.classes))]
        return list(tw.SUPERCLASSES), torch.tensor(groups)
    names = list(CIFAR100_SUPERCLASSES)
    group_of = {fine: g for g, fines in enumerate(CIFAR100_SUPERCLASSES.values()) for fine in fines}
    missing = [c for c in dataset.classes if c not in group_of]
    if missing:
        raise ValueError(f"superclasses: {missing[:3]} are not CIFAR-100 or toy-world classes.")
    return names, torch.tensor([group_of[c] for c in dataset.classes])


def pil_batch(images) -> torch.Tensor:
    """PIL images (all the same size) -> uint8 [B, 3, H, W], the input of `to_input`.

    Used by: compare_maps.compare, compare_maps.wrong_prompt_test and course_utils.toyclip.
    """
    return torch.stack([torch.from_numpy(np.asarray(im.convert("RGB")).transpose(2, 0, 1).copy()) for im in images])


def to_input(images_uint8: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] uint8 -> normalised float: clip's preprocess for images already at the model's size.

    Taught in: notebook 02, "The toy world".
    """
    x = images_uint8.float() / 255
    return (x - MEAN.to(x.device)[:, None, None]) / STD.to(x.device)[:, None, None]


def model_view(image, preprocess):
    """The PIL image as the model sees it: `preprocess`'s resizing and centre crop, without the normalisation.

    Draw heatmaps on this, not on the photo squashed to a square: on a non-square photo the crop cuts the sides off,
    and a map drawn on a stretched photo lands up to a few dozen pixels off. Works for clip's preprocess (a torchvision
    Compose) and leaves an image alone for a preprocess with no resize or crop step.
    Taught in: notebook 07, "Photos (real mode) and your own prompts".
    """
    for step in getattr(preprocess, "transforms", []):
        if type(step).__name__ in ("Resize", "CenterCrop"):
            image = step(image)
    return image


class Collate:
    """Turn a list of (PIL image, label) into a preprocessed batch (a class, so DataLoader workers can pickle it).

    Used by: notebook 03, "The whole test set" (through evaluate_zero_shot); head_contributions.
    """

    def __init__(self, preprocess):
        self.preprocess = preprocess

    def __call__(self, batch):
        images = torch.stack([self.preprocess(image) for image, _ in batch])  # [B, 3, R, R]
        return images, torch.tensor([label for _, label in batch])
