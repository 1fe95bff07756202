"""Decomposition cost: `decompose` time as a ratio to plain `encode_image`, and `head_contributions`' peak memory.

    .venv/bin/python benchmarks/decompose_cost.py [--batch-size 32] [--repeats 3] [--images 10000]

Uses openai's ViT-B/32 architecture with random weights (no download; the cost doesn't depend on the weights),
on CPU. Both timings are taken in this run, on the same batch, as the best of `--repeats` after a warm-up.
The memory part runs `head_contributions` (fp16 storage) over `--images` synthetic images in a fresh
subprocess and reports that process's peak resident set size (VmHWM), which includes torch and the vision tower,
in GiB (2**30 bytes); `head_contributions_peak_rss_gb_decimal` gives the same peak in 10**9 bytes.
The last line is one JSON object with `decompose_over_encode` and `head_contributions_peak_rss_gb`.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course_utils.decompose import decompose, head_contributions  # noqa: E402
from course_utils.models import ARCHITECTURES, clip, random_clip  # noqa: E402
from course_utils.report import best_time, print_result, proc_status_kb, return_freed_memory_to_os  # noqa: E402


class SyntheticImages(torch.utils.data.Dataset):
    """`n` preprocessed-looking images [3, 224, 224], generated per index (nothing held in memory)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.randn(3, 224, 224, generator=torch.Generator().manual_seed(i)), i % 100


def peak_rss_gb() -> float:
    """This process's peak resident set size. VmHWM, because ru_maxrss keeps the parent's peak across fork + exec."""
    peak_kb = proc_status_kb("VmHWM")
    if peak_kb is None:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux reports KiB
    return peak_kb / 2**20  # kB -> GB


def memory_run(n_images: int, batch_size: int) -> None:
    """Child process: stream n_images through head_contributions, print peak RSS (GB) and the result's shape.

    Only the vision tower is built: the head analysis never touches the text encoder (63M parameters, 0.25 GB).
    """
    a = ARCHITECTURES["ViT-B/32"]
    torch.manual_seed(0)
    visual = clip.model.VisionTransformer(input_resolution=a["image_resolution"], patch_size=a["vision_patch_size"],
                                          width=a["vision_width"], layers=a["vision_layers"],
                                          heads=a["vision_width"] // 64, output_dim=a["embed_dim"]).eval()
    loader = torch.utils.data.DataLoader(SyntheticImages(n_images), batch_size=batch_size)
    return_freed_memory_to_os()  # allocator tuning for this measurement only (see course_utils.report)
    before = peak_rss_gb()
    out = head_contributions(visual, loader, fp16=True, progress=False)
    print(json.dumps({"peak_rss_gb": round(peak_rss_gb(), 3), "peak_before_call_gb": round(before, 3),
                      "heads_shape": list(out.heads.shape),
                      "heads_gb": round(out.heads.numel() * out.heads.element_size() / 2**30, 3)}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=10_000, help="images for the head_contributions memory run")
    parser.add_argument("--memory-batch-size", type=int, default=16,
                        help="head_contributions' batch size (its default: smaller batches keep the peak lower)")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_run(args.images, args.memory_batch_size)
        return 0

    model = random_clip("ViT-B/32").float()
    images = torch.randn(args.batch_size, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        encode_s = best_time(lambda: model.encode_image(images), args.repeats)
    decompose_s = best_time(lambda: decompose(model, images), args.repeats)
    with torch.no_grad():
        expected = model.encode_image(images)
    rel = ((decompose(model, images).total() - expected).norm(dim=-1) / expected.norm(dim=-1)).max().item()
    del model

    start = time.perf_counter()
    child = subprocess.run([sys.executable, __file__, "--memory-child", "--images", str(args.images),
                            "--memory-batch-size", str(args.memory_batch_size)], capture_output=True, text=True, check=True)
    memory = json.loads(child.stdout.strip().splitlines()[-1])
    result = dict(model="ViT-B/32 (random weights)", device="cpu", threads=torch.get_num_threads(),
                  batch_size=args.batch_size, encode_image_s=round(encode_s, 3), decompose_s=round(decompose_s, 3),
                  decompose_over_encode=round(decompose_s / encode_s, 3), decompose_max_relative_error=float(f"{rel:.2e}"),
                  head_contributions_images=args.images, head_contributions_batch_size=args.memory_batch_size,
                  head_contributions_storage="fp16",
                  head_contributions_result_gb=memory["heads_gb"],
                  head_contributions_s=round(time.perf_counter() - start, 1),
                  process_peak_before_head_contributions_gb=memory["peak_before_call_gb"],
                  head_contributions_peak_rss_gb_decimal=round(memory["peak_rss_gb"] * 2**30 / 1e9, 3),
                  head_contributions_peak_rss_gb=memory["peak_rss_gb"])
    print_result(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
