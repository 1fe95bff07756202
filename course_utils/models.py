"""Models: load openai CLIP (by name or from a local state dict) and describe its vision transformer."""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from . import assets, env

with warnings.catch_warnings():  # openai-clip imports pkg_resources; the pin setuptools<81 keeps it working
    warnings.simplefilter("ignore", UserWarning)
    import clip  # noqa: E402

OPENAI_VIT_MODELS = ("ViT-B/32", "ViT-B/16", "ViT-L/14")

# Architecture hyper-parameters of clip.model.CLIP for the openai ViT checkpoints (from their state dicts).
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
}


def random_clip(name: str, seed: int = 0) -> torch.nn.Module:
    """A `clip.model.CLIP` with the architecture of `name` and randomly initialised weights (no download).

    The cost of a forward pass does not depend on the weights, so this is what shape tests and
    benchmarks use offline.
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"random_clip knows {list(ARCHITECTURES)}, not {name!r}.")
    torch.manual_seed(seed)
    return clip.model.CLIP(**ARCHITECTURES[name]).eval()


def _load_state_dict_file(path: Path, device: torch.device):
    """clip.load for a local file, with clear errors for the files it cannot read."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # openai's TorchScript archives are not plain state dicts: let clip.load try
        try:
            return clip.load(str(path), device=device, jit=False)
        except Exception:
            raise ValueError(f"{path} is not a CLIP checkpoint that torch can read ({type(err).__name__}: {err}).") from err
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or "visual.proj" not in sd or "visual.conv1.weight" not in sd:
        keys = list(sd)[:5] if isinstance(sd, dict) else type(sd).__name__
        raise ValueError(
            f"{path} is not an openai CLIP ViT state dict: it lacks 'visual.proj'/'visual.conv1.weight' "
            f"(first keys: {keys}). Pass the path of a file saved with torch.save(model.state_dict())."
        )
    model = clip.model.build_model(sd).to(device)
    from . import toyclip

    if toyclip.is_toyclip_state_dict(sd):  # build_model infers width // 64 heads; ToyCLIP uses more (see toyclip)
        toyclip.set_vision_heads(model, toyclip.VISION_HEADS)
    if device.type == "cpu":
        model.float()
    n_px = model.visual.input_resolution
    return model.eval(), clip.clip._transform(n_px)


def load_toyclip(device: str | torch.device | None = None):
    """The course's bundled ToyCLIP (checksum-verified), with the same `(model, preprocess)` as clip.load."""
    device = torch.device(device) if device is not None else env.get_device()
    return _load_state_dict_file(assets.fetch("toyclip"), device)


def load_clip(name: str = "ViT-B/32", device: str | torch.device | None = None):
    """Return `(model, preprocess)` for an openai model name, "toy", or the path of a local state dict.

    Real mode downloads an openai checkpoint once into the cache (see `assets`). In offline mode
    (COURSE_OFFLINE=1, or no network and nothing cached) an openai name returns the bundled ToyCLIP
    instead and prints a banner saying so. "toy" always returns ToyCLIP.
    """
    device = torch.device(device) if device is not None else env.get_device()
    name = str(name)
    if name.lower() in {"toy", "toyclip"}:
        return load_toyclip(device)
    if name in OPENAI_VIT_MODELS:
        reason = "COURSE_OFFLINE=1"
        if not env.forced_offline():
            try:
                return _load_state_dict_file(assets.fetch(name), device)  # cached and verified, or downloaded now
            except assets.AssetUnavailable as err:
                reason = "not cached and no network" if env.is_offline() else f"download failed: {err}"
        env.announce_offline(f"load_clip({name!r}) -> ToyCLIP ({reason})")
        return load_toyclip(device)
    path = Path(name).expanduser()
    looks_like_model_name = name.startswith(("ViT-", "RN"))
    if path.exists() or path.suffix in {".pt", ".pth", ".bin"} or (not looks_like_model_name and "/" in name):
        if not path.is_file():
            raise FileNotFoundError(
                f"load_clip: no file at {path}. Check the path, or pass one of {OPENAI_VIT_MODELS}."
            )
        return _load_state_dict_file(path, device)
    hint = " (a ResNet CLIP: this course studies the ViTs)" if name in clip.available_models() else ""
    raise ValueError(
        f"load_clip: unknown model {name!r}{hint}. Use one of {OPENAI_VIT_MODELS} or the path of a state dict."
    )


@dataclass(frozen=True)
class ModelInfo:
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
    """Layers, heads, width, patch size, grid and embedding width of a CLIP ViT."""
    visual = getattr(model, "visual", model)
    if not hasattr(visual, "conv1") or not hasattr(visual, "transformer"):
        raise ValueError(f"model_info needs a CLIP vision transformer; got {type(visual).__name__} (ResNet CLIPs are not covered).")
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
