"""ToyCLIP: train and evaluate the course's small openai `clip.model.CLIP` on the toy world (bundled in data/).

    python -m course_utils.toyclip train      # reproduces data/toyclip.pt from a fixed seed
    python -m course_utils.toyclip evaluate   # prints a table; its last line is one JSON object

Its architecture is `models.ARCHITECTURES["ToyCLIP"]`: the same class as ViT-B/32, only smaller, with the real
vocabulary (49,408 BPE tokens) and context (77), so `clip.tokenize` and `clip.model.build_model` work unchanged.
The loss is notebook 02's (`contrastive.clip_loss`).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import assets
from . import toyworld as tw
from .contrastive import clip_loss
from .data import pil_batch, to_input
from .heatmaps import relative_to_prompts, token_maps
from .inside_vit import patch_tokens
from .legrad import token_mean_embedding
from .metrics import pointing_hit, standard_tolerance
from .models import ARCHITECTURE_KEY, TOYCLIP, build, clip, load_clip
from .report import print_result
from .zero_shot import cosine_logits, encode_text_short, topk_accuracy, zero_shot_classifier

CHECKPOINT = assets.local_path("toyclip")  # data/toyclip.pt
TRAIN_CONTEXT = 40  # captions are <= 38 tokens; causal text attention makes later positions irrelevant


def make_training_set(n: int, seed: int = 0, single_fraction: float = 0.5):
    """Draw `n` scenes once (PIL is slow) and return uint8 images [n, 3, H, W] and tokens [n, TRAIN_CONTEXT].

    Used by: train.
    """
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


def image_and_token_mean(model, images: torch.Tensor):
    """model.encode_image(images) [B, d], and the last block's token-mean readout (LeGrad's, unit length) [B, d].

    Used by: train, for the auxiliary objective (aux_token_mean > 0).
    """
    visual = model.visual
    x = patch_tokens(visual, images)  # [B, N, D]
    x = visual.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)  # openai's blocks take [N, B, D]
    embedding = visual.ln_post(x[:, 0]) @ visual.proj  # [B, d]: what encode_image returns
    return embedding, token_mean_embedding(x, visual.ln_post.weight, visual.ln_post.bias, visual.proj,
                                           visual.ln_post.eps)


def train(steps: int = 3000, batch_size: int = 128, n_scenes: int = 120_000, lr: float = 1e-3, seed: int = 0,
          out: Path | None = CHECKPOINT, log_every: int = 100, eval_every: int = 500, threads: int | None = None,
          aux_token_mean: float = 0.0):
    """Train ToyCLIP from scratch; returns (model, list of losses). Deterministic for a given seed and machine.

    aux_token_mean > 0 adds that weight times the same contrastive loss on the last block's token-mean readout
    (LeGrad's reading of a block), so the patch tokens, not only CLS, come to carry the image's content, as they do
    in large CLIPs. 0 (the default) is the recipe of the bundled checkpoint.

    Used by: python -m course_utils.toyclip train (it made data/toyclip.pt) and tests/test_toyclip.py.
    """
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    images, tokens = make_training_set(n_scenes, seed=seed)
    print(f"drew {n_scenes} scenes in {time.perf_counter() - start:.0f}s")
    model = build(TOYCLIP, seed).train()
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
        text = encode_text_short(model, tokens[idx])
        if aux_token_mean:
            embedding, token_mean = image_and_token_mean(model, to_input(images[idx]))
            loss = clip_loss(embedding, text, model.logit_scale) + aux_token_mean * clip_loss(token_mean, text,
                                                                                           model.logit_scale)
        else:
            loss = clip_loss(model.encode_image(to_input(images[idx])), text, model.logit_scale)
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
    """fp16 state dict (openai's weights are fp16 too) with its architecture's name beside it.

    The file is {models.ARCHITECTURE_KEY: "ToyCLIP", "state_dict": ...}: the loader reads the name, not the
    tensor shapes, to know that the vision width splits into 8 heads. Read back with weights_only=True.
    Used by: train.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    torch.save({ARCHITECTURE_KEY: TOYCLIP, "state_dict": sd}, path)


# ---- evaluation ---------------------------------------------------------------------------------------------
@torch.inference_mode()
def zero_shot(model, dataset, batch_size: int = 500):
    """Top-1 and top-5 accuracy, and images/s of the image encoder on this machine.

    Taught in: notebook 02, "The course's ToyCLIP: the same model as ViT-B/32, only smaller".
    """
    text = zero_shot_classifier(model, dataset.classes)  # [C, d], the course's one prompt
    device = next(model.parameters()).device
    logits, labels, seconds = [], [], 0.0
    for lo in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(lo, min(lo + batch_size, len(dataset)))]
        x = to_input(pil_batch(im for im, _ in items)).to(device)
        t0 = time.perf_counter()
        emb = model.encode_image(x)
        seconds += time.perf_counter() - t0
        logits.append(cosine_logits(emb, text).cpu())  # [b, C]
        labels.append(torch.tensor([lab for _, lab in items]))
    logits, labels = torch.cat(logits), torch.cat(labels)
    return topk_accuracy(logits, labels, 1).item(), topk_accuracy(logits, labels, 5).item(), len(dataset) / seconds


@torch.inference_mode()
def pointing_game(model, n_scenes: int = 300, relative: bool = True) -> dict:
    """Pointing game on two-object scenes with the exact decomposition heatmap (all layers and heads).

    Returns the hit rate with the standard tolerance (15 px at 224 px, scaled: 4 px here, half a patch)
    and the strict rate (the peak pixel itself on the object), plus the number of objects scored.
    Used by: evaluate (python -m course_utils.toyclip evaluate).
    """
    scenes = tw.scenes(n_scenes, n_objects=2)
    text = zero_shot_classifier(model, tw.CLASSES)
    tolerance = standard_tolerance(tw.IMAGE_SIZE)
    hits = strict = total = 0
    for lo in range(0, n_scenes, 50):
        batch = scenes[lo: lo + 50]
        x = to_input(pil_batch(s.image for s in batch)).to(text.device)
        maps = token_maps(model, x, text).cpu()  # [B, C, H, W]: every class prompt's map at image resolution
        if relative:
            maps = relative_to_prompts(maps)
        for b, scene in enumerate(batch):
            for obj in scene.objects:
                hits += pointing_hit(maps[b, obj.label], obj.mask, tolerance)
                strict += pointing_hit(maps[b, obj.label], obj.mask, 0)
                total += 1
    return dict(pointing_game=hits / total, pointing_game_strict=strict / total, pointing_game_objects=total,
                pointing_game_tolerance_px=tolerance)


def evaluate(path: Path = CHECKPOINT, n_test: int = 2000, n_scenes: int = 300) -> dict:
    """Zero-shot top-1/top-5 on the toy test set, the pointing game, size and CPU speed of a checkpoint.

    Used by: python -m course_utils.toyclip evaluate (the numbers in data/README.md).
    """
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
    """python -m course_utils.toyclip train | evaluate: reproduce data/toyclip.pt, or measure a checkpoint.

    Used by: python -m course_utils.toyclip.
    """
    parser = argparse.ArgumentParser(description="Train or evaluate the bundled ToyCLIP.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="reproduce data/toyclip.pt from a fixed seed")
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--scenes", type=int, default=120_000)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", type=Path, default=CHECKPOINT)
    t.add_argument("--aux-token-mean", type=float, default=0.0,
                   help="weight of the contrastive loss on the last block's token-mean readout (default 0: off)")
    e = sub.add_parser("evaluate", help="zero-shot accuracy, pointing game, size and speed; last line is JSON")
    e.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    e.add_argument("--n-test", type=int, default=2000)
    e.add_argument("--n-scenes", type=int, default=300)
    args = parser.parse_args(argv)
    if args.cmd == "train":
        train(args.steps, args.batch_size, args.scenes, seed=args.seed, out=args.out, aux_token_mean=args.aux_token_mean)
        return 0
    result = evaluate(args.checkpoint, args.n_test, args.n_scenes)
    print_result(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
