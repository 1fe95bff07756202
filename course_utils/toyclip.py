"""ToyCLIP: a small openai `clip.model.CLIP`, trained by the course on the toy world, bundled in data/.

    python -m course_utils.toyclip train      # reproduces data/toyclip.pt from a fixed seed
    python -m course_utils.toyclip evaluate   # prints a table; its last line is one JSON object

Same architecture class as ViT-B/32 (openai's `clip.model.CLIP`), only smaller, with the real vocabulary
(49,408 BPE tokens) and context (77), so `clip.tokenize` and `clip.model.build_model` work unchanged.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import toyworld as tw
from .report import print_result

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "data" / "toyclip.pt"
CONFIG = dict(embed_dim=64, image_resolution=tw.IMAGE_SIZE, vision_layers=4, vision_width=128, vision_patch_size=8,
              context_length=77, vocab_size=49408, transformer_width=128, transformer_heads=2, transformer_layers=3)
# clip.model.CLIP gives a ViT width // 64 heads, which is 2 at width 128: too few for heads to specialise, and
# specialised heads are what TextSpan (notebook 06) finds in real CLIP's 12-16 heads per layer. ToyCLIP keeps the
# width and splits it into 8 heads of 16 dimensions. The state dict is the same shape either way, so every loader
# must call `set_vision_heads` (models.load_clip does, recognising ToyCLIP by `is_toyclip_state_dict`).
VISION_HEADS = 8
TRAIN_CONTEXT = 40  # captions are <= 38 tokens; causal text attention makes later positions irrelevant
MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073])  # openai CLIP's normalisation, as in clip.load's preprocess
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711])
PROMPT = "a photo of a {}"


def _clip():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        import clip
    return clip


def build(seed: int = 0):
    torch.manual_seed(seed)
    return set_vision_heads(_clip().model.CLIP(**CONFIG), VISION_HEADS)


def set_vision_heads(model, heads: int):
    """Split every vision block's attention into `heads` heads (same weights, different grouping)."""
    for block in model.visual.transformer.resblocks:
        attn = block.attn
        if attn.embed_dim % heads:
            raise ValueError(f"set_vision_heads: width {attn.embed_dim} does not split into {heads} heads.")
        attn.num_heads, attn.head_dim = heads, attn.embed_dim // heads
    return model


def is_toyclip_state_dict(sd) -> bool:
    """True for a state dict with ToyCLIP's vision shapes (64 px images, 8 px patches, width 128)."""
    conv = sd.get("visual.conv1.weight")
    pos = sd.get("visual.positional_embedding")
    w, p, r = CONFIG["vision_width"], CONFIG["vision_patch_size"], CONFIG["image_resolution"]
    return (conv is not None and pos is not None and tuple(conv.shape) == (w, 3, p, p)
            and pos.shape[0] == (r // p) ** 2 + 1)


def to_input(images_uint8: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] uint8 -> normalised float, the same as clip's preprocess on a 64x64 PIL image."""
    x = images_uint8.float() / 255
    return (x - MEAN[:, None, None]) / STD[:, None, None]


def make_training_set(n: int, seed: int = 0, single_fraction: float = 0.5):
    """Draw `n` scenes once (PIL is slow) and return uint8 images [n, 3, H, W] and tokens [n, TRAIN_CONTEXT]."""
    clip = _clip()
    rng = np.random.default_rng(seed)
    images = np.empty((n, 3, tw.IMAGE_SIZE, tw.IMAGE_SIZE), dtype=np.uint8)
    captions = []
    for i in tqdm(range(n), desc="drawing scenes", mininterval=5):
        n_obj = 1 if rng.random() < single_fraction else (2 if rng.random() < 0.7 else 3)
        scene = tw.random_scene(seed * 10_000_000 + i, n_objects=n_obj)
        images[i] = np.asarray(scene.image).transpose(2, 0, 1)
        captions.append(scene.caption)
    tokens = clip.tokenize(captions)
    assert (tokens[:, TRAIN_CONTEXT:] == 0).all(), "a caption is longer than TRAIN_CONTEXT tokens"
    return torch.from_numpy(images), tokens[:, :TRAIN_CONTEXT].clone()


def encode_text_short(model, tokens: torch.Tensor) -> torch.Tensor:
    """model.encode_text on the first n positions only: identical result for captions shorter than n tokens."""
    n = tokens.shape[1]
    x = model.token_embedding(tokens) + model.positional_embedding[:n]
    mask = model.build_attention_mask()[:n, :n]
    x = x.permute(1, 0, 2)
    for block in model.transformer.resblocks:
        block.attn_mask = mask
        x = block(x)
    for block in model.transformer.resblocks:
        block.attn_mask = model.build_attention_mask()
    x = model.ln_final(x.permute(1, 0, 2))
    return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ model.text_projection


def similarity_logits(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """[B_img, B_txt] cosine similarities times the learned inverse temperature exp(logit_scale)."""
    return logit_scale.exp() * F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T


def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: image i should pick caption i among the batch, and caption i should pick image i."""
    logits = similarity_logits(image_emb, text_emb, logit_scale)  # [B, B]
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def train(steps: int = 3000, batch_size: int = 128, n_scenes: int = 120_000, lr: float = 1e-3, seed: int = 0,
          out: Path | None = CHECKPOINT, log_every: int = 100, eval_every: int = 500, threads: int | None = None):
    """Train ToyCLIP from scratch; returns (model, list of losses). Deterministic for a given seed and machine."""
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    images, tokens = make_training_set(n_scenes, seed=seed)
    print(f"drew {n_scenes} scenes in {time.perf_counter() - start:.0f}s")
    model = build(seed).train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    gen = torch.Generator().manual_seed(seed)
    losses = []
    bar = tqdm(range(steps), desc="training ToyCLIP", mininterval=10)
    for step in bar:
        idx = torch.randint(0, n_scenes, (batch_size,), generator=gen)
        loss = clip_loss(model.encode_image(to_input(images[idx])), encode_text_short(model, tokens[idx]), model.logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        if (step + 1) % log_every == 0:
            bar.write(f"step {step + 1:5d}  loss {np.mean(losses[-log_every:]):.4f}  "
                      f"T={1 / model.logit_scale.exp().item():.4f}  {time.perf_counter() - start:.0f}s")
        if eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
            model.eval()
            top1, top5, _ = zero_shot(model, tw.ToyShapes(train=False, n=500))
            bar.write(f"step {step + 1:5d}  quick zero-shot on 500 test images: top-1 {top1:.3f}, top-5 {top5:.3f}")
            model.train()
    model.eval()
    if out is not None:
        save(model, out)
        print(f"saved {out} ({out.stat().st_size / 2**20:.1f} MiB) after {time.perf_counter() - start:.0f}s")
    return model, losses


def save(model, path: Path) -> None:
    """fp16 state dict (openai's weights are fp16 too), read back with weights_only=True by models.load_toyclip."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    torch.save(sd, path)


# ---- evaluation ---------------------------------------------------------------------------------------------
def class_text_embeddings(model, classnames, template: str = PROMPT) -> torch.Tensor:
    """[C, d] unit-norm class embeddings from one prompt template (see zero_shot.zero_shot_classifier)."""
    from .zero_shot import zero_shot_classifier

    return zero_shot_classifier(model, classnames, (template,))


def pil_batch(images) -> torch.Tensor:
    """PIL images (all the same size) -> uint8 [B, 3, H, W], the input of `to_input`."""
    return torch.stack([torch.from_numpy(np.asarray(im.convert("RGB")).transpose(2, 0, 1).copy()) for im in images])


@torch.inference_mode()
def zero_shot(model, dataset, batch_size: int = 500):
    """Top-1 and top-5 accuracy, and images/s of the image encoder on this machine."""
    text = class_text_embeddings(model, dataset.classes)
    correct1 = correct5 = 0
    seconds = 0.0
    for lo in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(lo, min(lo + batch_size, len(dataset)))]
        x = to_input(pil_batch(im for im, _ in items))
        labels = torch.tensor([lab for _, lab in items])
        t0 = time.perf_counter()
        emb = F.normalize(model.encode_image(x).float(), dim=-1)
        seconds += time.perf_counter() - t0
        top5 = (emb @ text.T).topk(5, dim=-1).indices
        correct1 += (top5[:, 0] == labels).sum().item()
        correct5 += (top5 == labels[:, None]).any(-1).sum().item()
    return correct1 / len(dataset), correct5 / len(dataset), len(dataset) / seconds


@torch.inference_mode()
def pointing_game(model, n_scenes: int = 300, relative: bool = True) -> dict:
    """Pointing game on two-object scenes with the exact decomposition heatmap (all layers and heads).

    Returns the hit rate with the standard tolerance (15 px at 224 px, scaled: 4 px here, half a patch)
    and the strict rate (the peak pixel itself on the object), plus the number of objects scored.
    """
    from .heatmaps import token_maps
    from .metrics import pointing_hit, standard_tolerance

    scenes = tw.scenes(n_scenes, n_objects=2)
    text = class_text_embeddings(model, tw.CLASSES)
    tolerance = standard_tolerance(tw.IMAGE_SIZE)
    hits = strict = total = 0
    for lo in range(0, n_scenes, 50):
        batch = scenes[lo: lo + 50]
        x = to_input(pil_batch(s.image for s in batch))
        maps = token_maps(model, x, text)  # [B, C, H, W]: every class prompt's map at image resolution
        if relative:
            maps = maps - maps.mean(dim=1, keepdim=True)
        for b, scene in enumerate(batch):
            for obj in scene.objects:
                hits += pointing_hit(maps[b, obj.label], obj.mask, tolerance)
                strict += pointing_hit(maps[b, obj.label], obj.mask, 0)
                total += 1
    return dict(pointing_game=hits / total, pointing_game_strict=strict / total, pointing_game_objects=total,
                pointing_game_tolerance_px=tolerance)


def evaluate(path: Path = CHECKPOINT, n_test: int = 2000, n_scenes: int = 300) -> dict:
    from .models import load_clip

    model, _ = load_clip(path, device="cpu")
    top1, top5, ips = zero_shot(model, tw.ToyShapes(train=False, n=n_test))
    pg = pointing_game(model, n_scenes)
    return dict(zero_shot_top1=round(top1, 4), zero_shot_top5=round(top5, 4), n_test_images=n_test,
                n_params=sum(p.numel() for p in model.parameters()),
                checkpoint_mb=round(path.stat().st_size / 1e6, 2), images_per_s_cpu=round(ips, 1),
                pointing_game=round(pg["pointing_game"], 4), pointing_game_strict=round(pg["pointing_game_strict"], 4),
                pointing_game_objects=pg["pointing_game_objects"],
                pointing_game_tolerance_px=pg["pointing_game_tolerance_px"], torch_threads=torch.get_num_threads())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train or evaluate the bundled ToyCLIP.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="reproduce data/toyclip.pt from a fixed seed")
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--scenes", type=int, default=120_000)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", type=Path, default=CHECKPOINT)
    e = sub.add_parser("evaluate", help="zero-shot accuracy, pointing game, size and speed; last line is JSON")
    e.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    e.add_argument("--n-test", type=int, default=2000)
    e.add_argument("--n-scenes", type=int, default=300)
    args = parser.parse_args(argv)
    if args.cmd == "train":
        train(args.steps, args.batch_size, args.scenes, seed=args.seed, out=args.out)
        return 0
    result = evaluate(args.checkpoint, args.n_test, args.n_scenes)
    print_result(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
