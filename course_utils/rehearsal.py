"""Rehearsal: a stand-in for the real-mode cache, built on this machine with no download.

Real mode needs openai's CLIP checkpoints and CIFAR-100 (about 0.9 GB, from two hosts). Instructors preparing a
session and CI, which has no network, still want to run the real-mode code paths end to end: the asset cache, the
checksum checks, `clip.load` on a TorchScript archive, torchvision's CIFAR100 reading the python-format pickles. This
module writes files of the real formats and shapes, but with random weights and synthetic pictures:

    save_openai_archive      a clip.model.CLIP saved the way openai ships it: fp16 weights in a TorchScript archive
    build_cifar100_archive   cifar-100-python.tar.gz in the CIFAR-100 python format, with synthetic 32x32 pictures
    write_rehearsal_cache    both, under the registered file names, plus a COURSE_ASSETS checksum file
    python -m course_utils.rehearsal DIR [--models ViT-B/32 ViT-B/16] [--n-test N]
                             the same from the shell; prints the `export` lines to paste

With COURSE_CACHE=DIR and COURSE_ASSETS=DIR/rehearsal_assets.json the course runs in real mode on these files, and
every Provenance says "unverified; checksum from COURSE_ASSETS: ... not openai's": numbers computed this way say
nothing about CLIP, only that the code runs.
"""
from __future__ import annotations

import argparse
import copy
import gzip
import io
import json
import os
import pickle
import shlex
import shutil
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from . import assets, data
from . import models as course_models  # renamed: `models` is write_rehearsal_cache's argument

CHECKSUMS_FILE = "rehearsal_assets.json"  # written next to the files; what COURSE_ASSETS points at
CIFAR_ASSET = "cifar-100-python"
MODEL_NOTE = "random weights for the real-mode rehearsal, not openai's"
CIFAR_NOTE = "synthetic images for the real-mode rehearsal, not CIFAR-100's"

# CIFAR-100's label order is alphabetical, for the fine classes and for the superclasses alike.
FINE_LABEL_NAMES = sorted(fine for fines in data.CIFAR100_SUPERCLASSES.values() for fine in fines)
COARSE_LABEL_NAMES = sorted(data.CIFAR100_SUPERCLASSES)
_COARSE_OF_FINE = {fine: COARSE_LABEL_NAMES.index(coarse)
                   for coarse, fines in data.CIFAR100_SUPERCLASSES.items() for fine in fines}

_SIDE = 32  # CIFAR pictures are 32 x 32 RGB
_FIXED_MTIME = 1_230_768_000  # 2009-01-01: tar and gzip headers carry this, so equal contents give equal archives


def _replace_atomically(path: Path, write) -> None:
    """Call write(tmp_path) on a file named like `path` in a private folder beside it, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".rehearsal-") as tmp:
        tmp_path = Path(tmp) / path.name  # same base name: torch.jit.save names the archive's folder after it
        write(tmp_path)
        os.replace(tmp_path, path)


def save_openai_archive(model: torch.nn.Module, path: str | Path) -> Path:
    """Save a `clip.model.CLIP` the way openai ships its checkpoints, and return the path.

    Like openai's files: a TorchScript archive of the whole model (traced `forward(image, text)`, `encode_image`
    and `encode_text`), weights converted to fp16 by `clip.model.convert_weights` (layer norms, embeddings and
    `logit_scale` stay fp32, as there), and `input_resolution`, `context_length`, `vocab_size` stored as tensors.
    So `torch.load(path, weights_only=True)` refuses it, and `clip.load(path, jit=False)` (and through it
    `models.load_clip(path)`) rebuilds the model from `torch.jit.load(path).state_dict()`.
    The trace runs in fp16 on the CPU on a one-image, one-caption example (about 2 s for ViT-B/32).
    `model` itself is left as it was: the archive is made from a copy.
    Used by: write_rehearsal_cache and tests/test_rehearsal.py.
    """
    path = Path(path)
    half = copy.deepcopy(model).cpu().eval()
    scalars = {"input_resolution": half.visual.input_resolution, "context_length": half.context_length,
               "vocab_size": half.vocab_size}
    for name, value in scalars.items():
        half.__dict__.pop(name, None)  # plain int attributes on clip.model.CLIP; tensors in openai's archives
        half.register_buffer(name, torch.tensor(int(value)))
    course_models.clip.model.convert_weights(half)
    side = half.input_resolution.item()
    image = torch.zeros(1, 3, side, side, dtype=half.dtype)
    text = course_models.clip.tokenize(["a photo of a rehearsal"], context_length=half.context_length.item())
    with warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export, and the tracer warns about the attention's shape
        # checks; neither matters here: openai's archives are TorchScript, and the shapes are fixed.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace_module(
            half, {"forward": (image, text), "encode_image": (image,), "encode_text": (text,)}, check_trace=False)
        _replace_atomically(path, lambda tmp: torch.jit.save(traced, str(tmp)))
    return path


def _pictures(n: int, seed: int, split: int) -> np.ndarray:
    """[n, 32, 32, 3] uint8: a two-colour gradient at some angle with a soft blob of a third colour, per picture.

    Picture i depends only on (seed, split, i), so it stays the same whatever n is.
    """
    params = []
    for i in range(n):
        rng = np.random.default_rng([seed, split, i])
        colours = rng.uniform(0, 1, size=(3, 3))  # gradient start, gradient end, blob
        angle = rng.uniform(0, 2 * np.pi)  # direction of the gradient
        cx, cy = rng.uniform(0.15, 0.85, 2)  # blob centre, as a fraction of the side
        radius, strength = rng.uniform(0.08, 0.3), rng.uniform(0.4, 1.0)
        params.append((colours, angle, cx, cy, radius, strength))
    colours = np.stack([p[0] for p in params])[:, :, None, None, :]  # [n, 3 colours, 1, 1, RGB]
    angle, cx, cy, radius, strength = (np.array([p[k] for p in params])[:, None, None] for k in range(1, 6))
    yy, xx = np.mgrid[0:_SIDE, 0:_SIDE] / (_SIDE - 1)  # [32, 32] each, in [0, 1]
    t = np.clip(0.5 + ((xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle)) / np.sqrt(0.5), 0, 1)[..., None]
    blob = (strength * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius ** 2)))[..., None]
    image = (colours[:, 0] * (1 - t) + colours[:, 1] * t) * (1 - blob) + colours[:, 2] * blob
    return np.round(image * 255).astype(np.uint8)


def _batch(n: int, seed: int, split: int, batch_label: str) -> dict:
    """One CIFAR-100 python-format batch: data [n, 3072] (each row R, then G, then B planes, row-major) and labels."""
    fine = [i % len(FINE_LABEL_NAMES) for i in range(n)]  # every class in turn
    pictures = _pictures(n, seed, split)
    return {
        "filenames": [f"{FINE_LABEL_NAMES[f]}_s_{i:06d}.png" for i, f in enumerate(fine)],
        "batch_label": batch_label,
        "fine_labels": fine,
        "coarse_labels": [_COARSE_OF_FINE[FINE_LABEL_NAMES[f]] for f in fine],
        "data": np.ascontiguousarray(pictures.transpose(0, 3, 1, 2)).reshape(n, 3 * _SIDE * _SIDE),
    }


def build_cifar100_archive(path: str | Path, n_train: int = 100, n_test: int = 1000, seed: int = 0) -> Path:
    """Write a synthetic cifar-100-python.tar.gz at `path`, in the format torchvision's CIFAR100 reads; return it.

    Members cifar-100-python/{train,test,meta}: pickles (protocol 2, read with encoding="latin1") of dicts with
    `data` (uint8 [N, 3072]), `fine_labels`, `coarse_labels`, `filenames`, `batch_label`, and for meta
    `fine_label_names` / `coarse_label_names` (CIFAR-100's real 100 and 20 names, in its alphabetical order).
    Labels go through all 100 classes in turn; pictures are smooth synthetic gradients and blobs, the same for
    the same seed. Fixed timestamps make the archive byte-for-byte reproducible. torchvision's own md5 check of
    the members fails on it by design: the course's loader vouches for the archive by its SHA-256 instead.
    Used by: write_rehearsal_cache and tests/test_rehearsal.py.
    """
    path = Path(path)
    members = {
        "train": _batch(n_train, seed, 0, "training batch 1 of 1"),
        "test": _batch(n_test, seed, 1, "testing batch 1 of 1"),
        "meta": {"fine_label_names": FINE_LABEL_NAMES, "coarse_label_names": COARSE_LABEL_NAMES},
    }

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=_FIXED_MTIME) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            folder = tarfile.TarInfo(data.CIFAR_FOLDER)
            folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, _FIXED_MTIME
            tar.addfile(folder)
            for name, content in members.items():
                blob = pickle.dumps(content, protocol=2)
                info = tarfile.TarInfo(f"{data.CIFAR_FOLDER}/{name}")
                info.size, info.mode, info.mtime = len(blob), 0o644, _FIXED_MTIME
                tar.addfile(info, io.BytesIO(blob))

    _replace_atomically(path, write)
    return path


def _read_table(path: Path) -> dict:
    """The checksum file an earlier call wrote ({} if none, or if it is damaged: then it counts as none)."""
    try:
        table = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}
    return table if isinstance(table, dict) else {}


def _is_current(path: Path, entry, recipe) -> bool:
    """True if `path` is the file `entry` recorded (same SHA-256), built from `recipe`."""
    return (isinstance(entry, dict) and entry.get("recipe") == recipe and path.is_file()
            and assets.sha256_of(path) == entry.get("sha256"))


def write_rehearsal_cache(folder: str | Path, models: tuple[str, ...] = ("ViT-B/32", "ViT-B/16"), seed: int = 0,
                          n_test: int = 1000, n_train: int = 100, verbose: bool = False) -> dict[str, str]:
    """Fill `folder` with stand-ins for the real-mode files; return the environment variables that select them.

    For each openai model name: random weights from `models.build(name, seed)`, saved by `save_openai_archive`
    under the registered file name (ViT-B-32.pt, ...); and the synthetic CIFAR-100 archive of
    `build_cifar100_archive` under its registered name. `folder/rehearsal_assets.json` records each file's SHA-256
    in the COURSE_ASSETS format (with a note, and the recipe it was built from). A file that is already there with
    its recorded checksum and recipe is kept, so a second call only re-reads checksums. A file under one of those
    names that this function did not write (openai's real checkpoint, an instructor's own) is never overwritten:
    that is a ValueError. Returns {"COURSE_CACHE": folder, "COURSE_ASSETS": the JSON file}, absolute paths.
    Used by: main (the CLI), tests/test_rehearsal.py and the real-mode rehearsal (tests/test_real_mode.py).
    """
    names = tuple(models)
    unknown = [n for n in names if n not in course_models.OPENAI_VIT_MODELS]
    if unknown:
        raise ValueError(f"write_rehearsal_cache: {unknown[0]!r} is not one of openai's models {course_models.OPENAI_VIT_MODELS}.")
    folder = Path(folder).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    table_path = folder / CHECKSUMS_FILE
    old = _read_table(table_path)
    plan = [(n, {"builder": "course_utils.models.build", "seed": seed}, MODEL_NOTE) for n in names]
    plan.append((CIFAR_ASSET, {"builder": "course_utils.rehearsal.build_cifar100_archive", "seed": seed,
                               "n_train": n_train, "n_test": n_test}, CIFAR_NOTE))
    for name, _, _ in plan:  # refuse before building anything
        target = folder / assets.REGISTRY[name].filename
        if target.exists() and name not in old:
            raise ValueError(
                f"write_rehearsal_cache: {target} exists and was not written by a rehearsal (it is not in "
                f"{table_path}); it may be a real file. Use an empty folder, or delete it first.")

    # keep entries of earlier calls whose files are still intact (e.g. ViT-B/16 when this call asks for ViT-B/32 only)
    planned = {name for name, _, _ in plan}
    table = {name: entry for name, entry in old.items() if name in assets.REGISTRY and name not in planned
             and _is_current(folder / assets.REGISTRY[name].filename, entry, (entry or {}).get("recipe"))}
    for name, recipe, note in plan:
        target = folder / assets.REGISTRY[name].filename
        if _is_current(target, old.get(name), recipe):
            table[name] = old[name]
            if verbose:
                print(f"kept  {target} ({target.stat().st_size / 2**20:.0f} MiB, checksum as recorded)")
            continue
        start = time.perf_counter()
        if name == CIFAR_ASSET:
            # the course unpacks the archive next to itself; drop the copy unpacked from the previous archive
            shutil.rmtree(folder / data.CIFAR_FOLDER, ignore_errors=True)
            build_cifar100_archive(target, n_train=n_train, n_test=n_test, seed=seed)
        else:
            model = course_models.build(name, seed).eval()
            save_openai_archive(model, target)
            del model
        table[name] = {"sha256": assets.sha256_of(target), "note": note, "recipe": recipe}
        if verbose:
            print(f"built {target} ({target.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.1f} s")
    _replace_atomically(table_path, lambda tmp: tmp.write_text(json.dumps(table, indent=2) + "\n"))
    return {"COURSE_CACHE": str(folder), "COURSE_ASSETS": str(table_path)}


def main(argv: list[str] | None = None) -> int:
    """`python -m course_utils.rehearsal DIR [--models ...] [--n-test N]`: write the cache, print `export` lines.

    Used by: instructors rehearsing real mode, and tests/test_rehearsal.py.
    """
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.rehearsal",
        description="Write a stand-in real-mode cache (random CLIP weights, synthetic CIFAR-100) with no download.")
    parser.add_argument("folder", help="where to write it (becomes COURSE_CACHE); not your real cache")
    parser.add_argument("--models", nargs="*", default=["ViT-B/32", "ViT-B/16"], choices=course_models.OPENAI_VIT_MODELS,
                        metavar="NAME", help=f"openai model names to stand in for (of {', '.join(course_models.OPENAI_VIT_MODELS)})")
    parser.add_argument("--n-test", type=int, default=1000, help="synthetic CIFAR-100 test pictures (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and pictures (default 0)")
    args = parser.parse_args(argv)
    variables = write_rehearsal_cache(args.folder, models=tuple(args.models), seed=args.seed, n_test=args.n_test,
                                      verbose=True)
    print("# real mode on random weights and synthetic pictures: paste these lines into your shell")
    for key, value in variables.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
