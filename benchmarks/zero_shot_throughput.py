"""Zero-shot throughput: batched evaluation vs seed 003's cell run once per image, same model, same run.

    .venv/bin/python benchmarks/zero_shot_throughput.py [--seed-images 4] [--batched-images 128]

Uses openai's ViT-B/32 architecture with random weights (no download): the cost of a forward pass doesn't
depend on the weights. The seed-style loop does what a learner first writes: for each image, preprocess it,
tokenise and encode all 100 class prompts, encode the image, softmax. The batched path encodes the prompts
once (zero_shot_classifier) and the images in batches (evaluate_zero_shot). Prints a table; the last line is
one JSON object with `batched_over_seed_loop` (images/s batched ÷ images/s seed loop).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_utils import toyworld as tw  # noqa: E402
from course_utils.models import clip, random_clip  # noqa: E402
from course_utils.report import print_result  # noqa: E402
from course_utils.zero_shot import evaluate_zero_shot, readable, zero_shot_classifier  # noqa: E402


def seed_loop(model, preprocess, dataset, n: int) -> float:
    """Seed 003's cell, once per image. Returns images/s."""
    start = time.perf_counter()
    for i in range(n):
        image, _ = dataset[i]
        image_input = preprocess(image).unsqueeze(0)
        text_inputs = torch.cat([clip.tokenize(f"a photo of a {readable(c)}") for c in dataset.classes])
        with torch.no_grad():
            image_features = model.encode_image(image_input)
            text_features = model.encode_text(text_inputs)
        image_features /= image_features.norm(dim=-1, keepdim=True)
        text_features /= text_features.norm(dim=-1, keepdim=True)
        similarity = (100.0 * image_features @ text_features.T).softmax(dim=-1)
        similarity[0].topk(5)
    return n / (time.perf_counter() - start)


def batched(model, preprocess, dataset, n: int, batch_size: int) -> float:
    """Encode the prompts once, then the images in batches. Returns images/s (prompt encoding included)."""
    start = time.perf_counter()
    classifier = zero_shot_classifier(model, dataset.classes, ("a photo of a {}",))
    evaluate_zero_shot(model, dataset, classifier, preprocess, batch_size=batch_size, indices=range(n), progress=False)
    return n / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-images", type=int, default=4)
    parser.add_argument("--batched-images", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    model = random_clip("ViT-B/32").float()
    preprocess = clip.clip._transform(model.visual.input_resolution)
    dataset = tw.ToyShapes(train=False)  # 100 classes, like CIFAR-100; images are upscaled to 224 px by preprocess
    seed_loop(model, preprocess, dataset, 1)  # warm-up (first calls allocate)
    seed_ips = seed_loop(model, preprocess, dataset, args.seed_images)
    batched_ips = batched(model, preprocess, dataset, args.batched_images, args.batch_size)
    result = dict(model="ViT-B/32 (random weights)", classes=len(dataset.classes), threads=torch.get_num_threads(),
                  seed_loop_images=args.seed_images, seed_loop_images_per_s=round(seed_ips, 3),
                  batched_images=args.batched_images, batch_size=args.batch_size,
                  batched_images_per_s=round(batched_ips, 2), batched_over_seed_loop=round(batched_ips / seed_ips, 1))
    print_result(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
