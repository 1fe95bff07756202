"""Assets: every file the course may download, with its URL, SHA-256, size and licence, and a cache.

`fetch(name)` returns a verified local path:
- a cached file whose checksum matches is used as is (no network needed);
- a cached file whose checksum does not match is reported, deleted and fetched again;
- otherwise the file is downloaded (short timeout, progress bar) to a temporary name, verified, then moved;
- offline, it raises AssetUnavailable with a message that says what to do.

The cache lives in $COURSE_CACHE (default ~/.cache/inside-clip). `obtain(name)` returns the path together with its
`Provenance` (real or toy, from cache / downloaded / bundled, verified or not): the loaders attach it to what they
return, and the banner reads the mode from there.

COURSE_ASSETS=/path/to/checksums.json replaces registered checksums, e.g.
    {"ViT-B/32": {"sha256": "<hex>", "note": "our own fine-tuned weights"}}
for files that are not the ones the course registered (the real-mode rehearsal's random weights, an instructor's own
checkpoint saved under the registered file name). They are then used like cached files, and reported as unverified.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import shutil
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from . import env

DOWNLOAD_TIMEOUT_S = 10.0  # per socket operation: a dead connection fails fast instead of hanging


class AssetUnavailable(RuntimeError):
    """An asset is neither in the cache nor downloadable right now.

    Used by: fetch (raises it), data.load_cifar100 and models.load_clip (fall back to offline mode on it).
    """


class ChecksumMismatch(RuntimeError):
    """A file's SHA-256 is not the registered one.

    Used by: fetch (a corrupt download or bundled file) and the tests.
    """


@dataclass(frozen=True)
class Asset:
    """One file the course may use: its URL, SHA-256, file name, size, licence, and its data/ path if bundled.

    Used by: REGISTRY (through register), fetch and the tests.
    """
    name: str
    url: str
    sha256: str
    filename: str
    size_bytes: int | None  # for the progress bar and disk-space messages; the checksum is what counts
    license: str
    bundled: str | None = None  # path inside the repository for assets shipped in data/ (never downloaded)

    def __str__(self) -> str:
        size = f"{self.size_bytes / 2**20:.0f} MiB" if self.size_bytes else "size not recorded"
        return f"{self.name}: {self.filename} ({size}) from {self.url} · licence: {self.license}"


_CLIP_LICENSE = "MIT (openai/CLIP); weights released by OpenAI with the CLIP repository"
_CLIP_BASE = "https://openaipublic.azureedge.net/clip/models"

REGISTRY: dict[str, Asset] = {}


def register(asset: Asset) -> Asset:
    """Add `asset` to REGISTRY under its name and return it.

    Used by: this module, to register the CLIP weights, CIFAR-100 and ToyCLIP.
    """
    REGISTRY[asset.name] = asset
    return asset


# openai publishes each checkpoint under a path that *is* its SHA-256.
# Sizes are the byte counts recorded in public download logs and model-zoo manifests.
for _name, _sha, _file, _size in [
    ("ViT-B/32", "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", "ViT-B-32.pt", 353976522),
    ("ViT-B/16", "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f", "ViT-B-16.pt", 350837078),
    ("ViT-L/14", "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836", "ViT-L-14.pt", 932768134),
]:
    register(Asset(_name, f"{_CLIP_BASE}/{_sha}/{_file}", _sha, _file, _size, _CLIP_LICENSE))

CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"  # torchvision's own check of the same archive
register(
    Asset(
        "cifar-100-python",
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
        "cifar-100-python.tar.gz",
        169001437,
        "CIFAR-100 (Krizhevsky, 2009); research use, cite the tech report",
    )
)


ROOT = Path(__file__).resolve().parent.parent  # the repository: the one definition of it in the package

# Shipped with the course (see data/README.md); trained by `python -m course_utils.toyclip train`.
register(
    Asset(
        "toyclip",
        "data/toyclip.pt",
        "ce20f82dfa37266bb8566fea777745655613f6de2984ff52d96cd62dcd65bbb2",
        "toyclip.pt",
        None,
        "MIT, like this course: trained from scratch by course_utils.toyclip on the procedurally drawn toy world",
        bundled="data/toyclip.pt",
    )
)


@dataclass(frozen=True)
class Provenance:
    """Where a loaded model or dataset came from: the one source of truth for the mode a number belongs to.

    Used by: models.load_clip and data.load_cifar100 (as `.course_asset`), read by env.banner and env.mode.
    """
    real: bool  # openai CLIP weights or real CIFAR-100 (or a stand-in at their shapes), not ToyCLIP / the toy world
    name: str  # "ViT-B/32", "CIFAR-100", "ToyCLIP", "ToyShapes", or a file name
    origin: str  # "cache", "downloaded", "bundled", "local file", "drawn"
    verified: bool  # the file's SHA-256 matched the course's own registry
    detail: str = ""  # why it was substituted, or whose checksum vouched for it

    def describe(self) -> str:
        """"ViT-B/32 (from cache, SHA-256 verified)" and the like: one phrase for the banner.

        Used by: env.banner.
        """
        check = "drawn by the course" if self.origin == "drawn" else ("SHA-256 verified" if self.verified else "unverified")
        where = {"cache": "from cache", "drawn": ""}.get(self.origin, self.origin)
        extra = f"; {self.detail}" if self.detail else ""
        return f"{self.name} ({where + ', ' if where else ''}{check}{extra})"


def overrides() -> dict[str, dict]:
    """{asset name: {"sha256": ..., "note": ...}} from the JSON file named by COURSE_ASSETS ({} if unset).

    Used by: get.
    """
    path = os.environ.get("COURSE_ASSETS", "").strip()
    if not path:
        return {}
    try:
        table = json.loads(Path(path).expanduser().read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"COURSE_ASSETS={path} is not a readable JSON file ({err}). Fix the file or unset the "
                         "variable.") from err
    bad = [k for k, v in table.items() if k not in REGISTRY or not isinstance(v, dict) or "sha256" not in v]
    if bad:
        raise ValueError(f"COURSE_ASSETS={path}: entry {bad[0]!r} must name a known asset ({', '.join(sorted(REGISTRY))}) "
                         'and give {"sha256": "<hex>", "note": "..."}.')
    return table


def cache_dir() -> Path:
    """The download cache: $COURSE_CACHE, or ~/.cache/inside-clip (created if missing).

    Used by: local_path.
    """
    path = Path(os.environ.get("COURSE_CACHE", Path.home() / ".cache" / "inside-clip")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def get(name: str) -> Asset:
    """The registered Asset called `name`; otherwise a KeyError that lists the known names.

    Used by: local_path, is_cached, fetch and the tests.
    """
    try:
        asset = REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise KeyError(f"Unknown asset {name!r}. Known assets: {known}.") from None
    override = overrides().get(name)
    return replace(asset, sha256=override["sha256"].lower()) if override else asset


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks.

    Used by: is_cached, fetch and the tests.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def local_path(name: str) -> Path:
    """Where asset `name` lives: its data/ path if bundled, else its file in the cache (which may not exist yet).

    Used by: fetch, is_cached, toyclip.CHECKPOINT and preflight (to choose the mode).
    """
    asset = get(name)
    return ROOT / asset.bundled if asset.bundled else cache_dir() / asset.filename


def is_cached(name: str) -> bool:
    """True if the asset is in the cache *and* its checksum matches.

    Used by: tests/test_assets.py.
    """
    path = local_path(name)
    return path.is_file() and sha256_of(path) == get(name).sha256


def _download(asset: Asset, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(asset.url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or asset.size_bytes
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"fetch {asset.name}") as bar:
                while block := response.read(1 << 20):
                    out.write(block)
                    bar.update(len(block))
        got = sha256_of(tmp)
        if got != asset.sha256:
            raise ChecksumMismatch(
                f"Downloaded {asset.name!r} from {asset.url} but its SHA-256 is {got}, expected {asset.sha256}. "
                "The download was corrupted or the file changed upstream; run again, or report it."
            )
        shutil.move(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _verify_bundled(asset: Asset, path: Path) -> Path:
    if not path.is_file():
        raise AssetUnavailable(
            f"The bundled {asset.name!r} is missing at {path}. Restore it with `git checkout -- {asset.bundled}`, "
            "or rebuild it (see data/README.md)."
        )
    got = sha256_of(path)
    if got != asset.sha256:
        raise ChecksumMismatch(
            f"The bundled {asset.name!r} at {path} is corrupt: SHA-256 {got}, expected {asset.sha256}. Restore it with "
            f"`git checkout -- {asset.bundled}` (or `git lfs pull` if your clone uses LFS), or rebuild it (data/README.md)."
        )
    return path


def fetch(name: str) -> Path:
    """Return the verified local path of asset `name`, downloading it if needed (see module docstring).

    Used by: models.load_clip and load_toyclip, data.load_cifar100 and the tests.
    """
    return obtain(name)[0]


def obtain(name: str) -> tuple[Path, Provenance]:
    """`fetch`, and the file's Provenance: real or toy, from cache / downloaded / bundled, and who vouched for it.

    Used by: models.load_clip, data.load_cifar100 and `make fetch`.
    """
    asset = get(name)
    override = overrides().get(name)
    verified = override is None
    detail = "" if verified else f"checksum from COURSE_ASSETS: {override.get('note') or 'no note'}"
    real = not asset.bundled

    def found(path: Path, origin: str):
        return path, Provenance(real, name, origin, verified, detail)

    dest = local_path(name)
    if asset.bundled:
        return found(_verify_bundled(asset, dest), "bundled")
    if dest.is_file():
        got = sha256_of(dest)
        if got == asset.sha256:
            return found(dest, "cache")
        print(
            f"⚠️  Cached {asset.name!r} at {dest} is corrupt (SHA-256 {got[:12]}…, expected {asset.sha256[:12]}…); "
            "deleting it and fetching it again."
        )
        dest.unlink()
    if env.is_offline():
        raise AssetUnavailable(
            f"{asset.name!r} is not in the cache ({dest}) and the course is offline "
            f"({'COURSE_OFFLINE=1 is set' if env.forced_offline() else 'the network check failed'}). "
            f"To use it: connect to the internet and run again, or download {asset.url} on another machine "
            f"and copy it to {dest} (its SHA-256 must be {asset.sha256})."
        )
    try:
        _download(asset, dest)
    except ChecksumMismatch:
        raise
    except OSError as err:  # URLError, timeouts, refused connections, disk errors
        raise AssetUnavailable(
            f"Could not download {asset.name!r} from {asset.url}: {err}. Check your connection and run again, "
            f"or copy the file to {dest} by hand (SHA-256 {asset.sha256})."
        ) from err
    return found(dest, "downloaded")


WORKSHOP_ASSETS = ("ViT-B/32", "ViT-B/16", "cifar-100-python")  # what the notebooks load in real mode


def main(argv=None) -> int:
    """`make fetch`: download and verify every real asset once, and say where they are.

    Copy that folder to the room's machines (or point COURSE_CACHE at a USB stick holding it) and every notebook runs
    in real mode with the network unplugged.
    Used by: make fetch.
    """
    parser = argparse.ArgumentParser(description="Download and verify the course's real assets into the cache.")
    parser.add_argument("names", nargs="*", default=list(WORKSHOP_ASSETS),
                        help=f"assets to fetch (default: {' '.join(WORKSHOP_ASSETS)}; also ViT-L/14)")
    args = parser.parse_args(argv)
    if env.forced_offline():
        print("COURSE_OFFLINE=1 is set: unset it to fetch the real assets.")
        return 1
    missing = []
    for name in args.names:
        try:
            path, provenance = obtain(name)
        except (AssetUnavailable, ChecksumMismatch, KeyError) as err:
            missing.append(name)
            print(f"✗ {name}: {err}")
            continue
        print(f"✓ {provenance.describe()}: {path} ({path.stat().st_size / 2**20:.0f} MiB)")
    print(f"\ncache folder: {cache_dir()}")
    if missing:
        print(f"{len(missing)} asset(s) missing: {', '.join(missing)}. Run `make fetch` again where there is internet.")
        return 1
    print("Copy this folder to each machine's cache (or set COURSE_CACHE to where it is): the notebooks then run in "
          "real mode without a network.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
