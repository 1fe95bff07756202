"""Models: load openai CLIP (by name or from a local checkpoint), build it from a named architecture, describe it.

    ARCHITECTURES     openai's three ViTs and the course's ToyCLIP, as `clip.model.CLIP` arguments
    build             a randomly initialised model of a named architecture (what random_clip and training use)
    load_clip         (model, preprocess) for "ViT-B/32", "toy", or the path of a checkpoint
    model_info        layers, heads, width, grid, embedding width

This is the one place the package imports openai's `clip` (the others use `models.clip`).
"""
from __future__ import annotations

import os
import warnings
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import clip  # openai-clip; course_utils/__init__ silences the pkg_resources warning it triggers
import torch

from . import assets, env
from . import toyworld as tw

OPENAI_VIT_MODELS = ("ViT-B/32", "ViT-B/16", "ViT-L/14")
TOYCLIP = "ToyCLIP"

# Arguments of clip.model.CLIP for each architecture (openai's read off their state dicts), plus `vision_heads`
# where it is not clip.model.CLIP's own choice of vision_width // 64.
ARCHITECTURES: dict[str, dict[str, int]] = {
    "ViT-B/32": dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=32,
                     context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8,
                     transformer_layers=12),
    "ViT-B/16": dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=16,
                     context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8,
                     transformer_layers=12),
    "ViT-L/14": dict(embed_dim=768, image_resolution=224, vision_layers=24, vision_width=1024, vision_patch_size=14,
                     context_length=77, vocab_size=49408, transformer_width=768, transformer_heads=12,
                     transformer_layers=12),
    # The course's offline model (notebook 02; trained by course_utils.toyclip). Width 128 would give
    # clip.model.CLIP 2 vision heads: too few to specialise, and specialised heads are what TextSpan (notebook 06)
    # finds in real CLIP's 12-16. So ToyCLIP splits the same width into 8 heads of 16. The weights have the same
    # shapes either way, which is why its checkpoint names its architecture (ARCHITECTURE_KEY).
    TOYCLIP: dict(embed_dim=64, image_resolution=tw.IMAGE_SIZE, vision_layers=6, vision_width=128, vision_patch_size=8,
                  context_length=77, vocab_size=49408, transformer_width=128, transformer_heads=2,
                  transformer_layers=3, vision_heads=8),
}
# A checkpoint saved as {ARCHITECTURE_KEY: name, "state_dict": weights} is built as ARCHITECTURES[name].
# openai's own files carry no marker and are built the way clip.load builds them.
ARCHITECTURE_KEY = "course_architecture"


def set_vision_heads(model, heads: int):
    """Split every vision block's attention into `heads` heads (same weights, different grouping).

    Used by: build and load_clip, for ToyCLIP's 8 heads (why: notebook 06, "Every late head, in words").
    """
    for block in model.visual.transformer.resblocks:
        attn = block.attn
        if attn.embed_dim % heads:
            raise ValueError(f"set_vision_heads: width {attn.embed_dim} does not split into {heads} heads.")
        attn.num_heads, attn.head_dim = heads, attn.embed_dim // heads
    return model


def _check_name(name: str, who: str) -> dict:
    if name not in ARCHITECTURES:
        raise ValueError(f"{who} knows {list(ARCHITECTURES)}, not {name!r}.")
    return ARCHITECTURES[name]


def build(name: str, seed: int = 0) -> torch.nn.Module:
    """A `clip.model.CLIP` of architecture `name`, randomly initialised from `seed`, in train mode.

    The seed drives a forked generator: the caller's global random state is left as it was.
    Used by: random_clip and toyclip.train.
    """
    arch = dict(_check_name(name, "build"))
    heads = arch.pop("vision_heads", None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = clip.model.CLIP(**arch)
    return set_vision_heads(model, heads) if heads else model


def random_clip(name: str, seed: int = 0) -> torch.nn.Module:
    """`build(name, seed)` in eval mode: real shapes, random weights (no download).

    The cost of a forward pass does not depend on the weights, so this is what shape tests and
    benchmarks use offline.
    Taught in: notebook 02, "The course's ToyCLIP: openai's CLIP architecture, only smaller".
    """
    _check_name(name, "random_clip")
    return build(name, seed).eval()


def is_torchscript_archive(path: Path) -> bool:
    """True for a TorchScript archive (how openai ships CLIP), False for a plain torch.save file or anything else.

    Used by: _read_checkpoint, so that torch.load is never handed an archive (it would warn, then fail).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _read_checkpoint(path: Path):
    """(state dict, architecture name or None) from a checkpoint file; None for openai's TorchScript archives."""
    if is_torchscript_archive(path):  # clip.load reads those
        return None, None
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a CLIP checkpoint that torch can read ({type(err).__name__}: {err}).") from err
    arch = None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        arch = sd.get(ARCHITECTURE_KEY)
        sd = sd["state_dict"]
    if arch is not None and arch not in ARCHITECTURES:
        raise ValueError(f"{path} says it is a {arch!r} checkpoint, an architecture this course does not know "
                         f"({list(ARCHITECTURES)}). Update the course, or load a checkpoint it knows.")
    if not isinstance(sd, dict) or "visual.proj" not in sd or "visual.conv1.weight" not in sd:
        keys = list(sd)[:5] if isinstance(sd, dict) else type(sd).__name__
        raise ValueError(
            f"{path} is not an openai CLIP ViT state dict: it lacks 'visual.proj'/'visual.conv1.weight' "
            f"(first keys: {keys}). Pass the path of a file saved with torch.save(model.state_dict())."
        )
    return sd, arch


def _load_checkpoint(path: Path, device: torch.device):
    """clip.load for a local file, with clear errors for the files it cannot read -> (model, preprocess, architecture).

    The model is float32 on every device. clip.load keeps fp16 weights on a GPU, where the course's checks (a hand
    computation against the module at 1e-4, two batchings of the same prompts) differ by ~1e-3 and would fail on
    Colab only (seen on an H200 in the real-mode rehearsal). ViT-B/32 in float32 still encodes CIFAR-100's 10,000
    test images in seconds on a GPU.
    """
    sd, arch = _read_checkpoint(path)
    if sd is None:
        try:
            with warnings.catch_warnings():  # torch 2.14 marks torch.jit.load, which clip.load calls, as deprecated
                warnings.filterwarnings("ignore", message=".*torch.jit.load.* is deprecated", category=FutureWarning)
                model, preprocess = clip.load(str(path), device=device, jit=False)
        except Exception as err:
            raise ValueError(f"{path} is not a CLIP checkpoint that torch can read ({type(err).__name__}: {err}).") from err
        return model.float(), preprocess, None
    model = clip.model.build_model(sd).to(device)  # what clip.load(..., jit=False) does with a state dict
    heads = ARCHITECTURES[arch].get("vision_heads") if arch else None
    if heads:  # build_model infers vision_width // 64 heads from the shapes; the marker says otherwise
        set_vision_heads(model, heads)
    model.float()
    return model.eval(), clip.clip._transform(model.visual.input_resolution), arch


def course_model() -> str:
    """The model the whole course uses: $COURSE_MODEL (ViT-B/32, ViT-B/16, ViT-L/14 or a checkpoint's path), else ViT-B/32.

    Used by: load_clip, when a notebook calls it without a name.
    """
    return os.environ.get("COURSE_MODEL", "").strip() or "ViT-B/32"


def load_toyclip(device: str | torch.device | None = None, detail: str = ""):
    """The course's bundled ToyCLIP (checksum-verified), with the same `(model, preprocess)` as clip.load.

    `model.course_asset` says what it is; `detail` says what it stands in for, when it does.
    Used by: notebook 02, "The course's ToyCLIP: openai's CLIP architecture, only smaller" (through load_clip).
    """
    device = torch.device(device) if device is not None else env.get_device()
    path, provenance = assets.obtain("toyclip")
    model, preprocess, _ = _load_checkpoint(path, device)
    model.course_asset = replace(provenance, name=TOYCLIP, detail=detail)
    return model, preprocess


def load_clip(name: str | None = None, device: str | torch.device | None = None):
    """Return `(model, preprocess)` for an openai model name, "toy", or the path of a local checkpoint.

    No name: the course's model, `course_model()` ($COURSE_MODEL, default ViT-B/32). Real mode downloads an
    openai checkpoint once into the cache (see `assets`); cached, it needs no network. In offline mode
    (COURSE_OFFLINE=1, or not cached and not downloadable) an openai name returns the bundled ToyCLIP instead.
    `model.course_asset` (an `assets.Provenance`) says which of these happened; the banner reads it.
    Taught in: notebook 03, "The course notes' zero-shot cells, one by one".
    """
    device = torch.device(device) if device is not None else env.get_device()
    name = course_model() if name is None else str(name)
    if name.lower() in {"toy", "toyclip"}:
        return load_toyclip(device)
    if name in OPENAI_VIT_MODELS:
        reason = "COURSE_OFFLINE=1"
        if not env.forced_offline():
            try:
                path, provenance = assets.obtain(name)  # cached and verified, or downloaded now
            except assets.AssetUnavailable as err:
                reason = "not cached and no network" if env.is_offline() else f"download failed: {err}"
            else:
                model, preprocess, _ = _load_checkpoint(path, device)
                model.course_asset = provenance
                return model, preprocess
        env.announce_substitution(f"load_clip({name!r}) -> ToyCLIP ({reason})")
        return load_toyclip(device, detail=f"instead of {name}: {reason}")
    path = Path(name).expanduser()
    looks_like_model_name = name.startswith(("ViT-", "RN"))
    if path.exists() or path.suffix in {".pt", ".pth", ".bin"} or (not looks_like_model_name and "/" in name):
        if not path.is_file():
            raise FileNotFoundError(
                f"load_clip: no file at {path}. Check the path (COURSE_MODEL={os.environ.get('COURSE_MODEL', '')!r}), "
                f"or pass one of {OPENAI_VIT_MODELS}."
            )
        model, preprocess, arch = _load_checkpoint(path, device)
        model.course_asset = assets.Provenance(arch != TOYCLIP, f"{arch or 'CLIP'} from {path.name}", "local file",
                                               False, str(path.resolve()))
        return model, preprocess
    hint = " (a ResNet CLIP: this course studies the ViTs)" if name in clip.available_models() else ""
    raise ValueError(
        f"load_clip: unknown model {name!r}{hint}. Use one of {OPENAI_VIT_MODELS} or the path of a state dict."
    )


def architecture_name(model) -> str:
    """The name in ARCHITECTURES whose vision tower has this model's shapes ("ViT-B/32", "ToyCLIP", ...).

    Raises a ValueError naming the shapes if none matches (a ViT the course has no entry for).
    Used by: notebook 08, "Time and memory per map" (to measure memory on fresh weights of the same shapes).
    """
    info = model_info(model)
    for name, a in ARCHITECTURES.items():
        if (a["vision_layers"], a["vision_width"], a["vision_patch_size"], a["image_resolution"], a["embed_dim"],
                a.get("vision_heads", a["vision_width"] // 64)) == (info.layers, info.width, info.patch_size,
                                                                   info.image_resolution, info.embed_dim, info.heads):
            return name
    raise ValueError(f"architecture_name: no entry of ARCHITECTURES has these shapes: {info}.")


class NotAViT(TypeError, ValueError):
    """A model that is not a CLIP vision transformer (e.g. ResNet CLIP) was passed where a ViT is needed.

    Used by: vit_visual, which raises it.
    """


def vit_visual(model, who: str):
    """model.visual (or the visual module itself) if it is a CLIP ViT; NotAViT with what to do otherwise.

    The one "is this a ViT?" check of the package.
    Used by: model_info, inside_vit, heatmaps, legrad and compare_maps.
    """
    visual = getattr(model, "visual", model)
    if not hasattr(visual, "transformer") or not hasattr(visual, "conv1") or not hasattr(visual, "proj"):
        kind = type(visual).__name__
        raise NotAViT(f"{who}: {kind} is not supported; it needs a CLIP vision transformer (ViT-B/32, ViT-B/16, "
                        f"ViT-L/14 or ToyCLIP). ResNet CLIP (RN50, ...) has no CLS token or attention heads to read.")
    return visual


@dataclass(frozen=True)
class ModelInfo:
    """What model_info reports about a CLIP ViT (vision side), as a frozen dataclass.

    Taught in: notebook 04, "`print(model)`, explained".
    """
    layers: int  # residual blocks in the vision transformer
    heads: int  # attention heads per block
    width: int  # residual stream width (before the projection)
    patch_size: int
    grid: int  # patches per side: image_resolution // patch_size
    embed_dim: int  # width of the shared image-text space (after visual.proj)
    image_resolution: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def model_info(model: torch.nn.Module) -> ModelInfo:
    """Layers, heads, width, patch size, grid and embedding width of a CLIP ViT.

    Taught in: notebook 04, "`print(model)`, explained".
    """
    visual = vit_visual(model, "model_info")
    patch = visual.conv1.kernel_size[0]
    return ModelInfo(
        layers=len(visual.transformer.resblocks),
        heads=visual.transformer.resblocks[0].attn.num_heads,
        width=visual.conv1.out_channels,
        patch_size=patch,
        grid=visual.input_resolution // patch,
        embed_dim=visual.proj.shape[1],
        image_resolution=visual.input_resolution,
    )
