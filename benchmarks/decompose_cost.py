"""Decomposition cost: `decompose` time as a ratio to plain `encode_image` (both conventions), and the peak memory
of `head_contributions` streaming to disk, for growing numbers of images.

    .venv/bin/python benchmarks/decompose_cost.py [--batch-size 32] [--repeats 5] [--images 10000 30000]
                                                  [--memory-resolution 224]

Uses openai's ViT-B/32 architecture with random weights (no download; the cost doesn't depend on the weights),
on CPU. The timings are taken in this run, on the same batch, after one warm-up call of each, in `--repeats` rounds;
each round times `encode_image`, then `decompose` in each convention, back to back, so a machine whose speed drifts
during the run shifts every column alike. `decompose_over_encode_paper` and `decompose_over_encode_centred` are the
fastest round of each over the fastest `encode_image`; `..._paired_median` is the median over rounds of each
round's own ratio, which drift shifts less still. `..._page_faults` (median per call) count the fresh pages each call
was handed by the system; `decompose_result_pages` is how many of them decompose's result alone fills.
The memory part runs `head_contributions(..., store=<a temporary folder>)` over each `--images` count of synthetic
images, each in a fresh subprocess, and reports that process's peak resident set size (VmHWM), which includes
torch and the vision tower, in GiB (2**30 bytes). `--memory-resolution 32` builds the same ViT-B/32 tower (12
layers, 12 heads, width 768, 512-d output: the same result per image) at 32 px, one patch, so 30,000 images take
minutes on a CPU instead of an hour; the per-batch activations are then smaller than at 224 px, the stored result
is the same. `peak_growth` is the largest count's peak over the smallest's.
The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course_utils.decompose import CONVENTIONS, decompose, head_contributions  # noqa: E402
from course_utils.models import ARCHITECTURES, clip, random_clip  # noqa: E402
from course_utils.report import print_result, proc_status_kb, return_freed_memory_to_os  # noqa: E402


class SyntheticImages(torch.utils.data.Dataset):
    """`n` preprocessed-looking images [3, R, R], generated per index (nothing held in memory)."""

    def __init__(self, n: int, resolution: int = 224):
        self.n, self.resolution = n, resolution

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        r = self.resolution
        return torch.randn(3, r, r, generator=torch.Generator().manual_seed(i)), i % 100


def peak_rss_gb() -> float:
    """This process's peak resident set size. VmHWM, because ru_maxrss keeps the parent's peak across fork + exec."""
    peak_kb = proc_status_kb("VmHWM")
    if peak_kb is None:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux reports KiB
    return peak_kb / 2**20  # kB -> GB


def memory_run(n_images: int, batch_size: int, resolution: int) -> None:
    """Child process: stream n_images through head_contributions into a temporary folder, print peak RSS (GB),
    the result's shape and its size on disk.

    Only the vision tower is built: the head analysis never touches the text encoder (63M parameters, 0.25 GB).
    """
    a = ARCHITECTURES["ViT-B/32"]
    torch.manual_seed(0)
    visual = clip.model.VisionTransformer(input_resolution=resolution, patch_size=a["vision_patch_size"],
                                          width=a["vision_width"], layers=a["vision_layers"],
                                          heads=a["vision_width"] // 64, output_dim=a["embed_dim"]).eval()
    loader = torch.utils.data.DataLoader(SyntheticImages(n_images, resolution), batch_size=batch_size)
    return_freed_memory_to_os()  # allocator tuning for this measurement only (see course_utils.report)
    before = peak_rss_gb()
    with tempfile.TemporaryDirectory() as folder:
        out = head_contributions(visual, loader, progress=False, store=folder)
        disk = sum(f.stat().st_size for f in Path(folder).iterdir())
        print(json.dumps({"peak_rss_gb": round(peak_rss_gb(), 3), "peak_before_call_gb": round(before, 3),
                          "heads_shape": list(out.heads.shape), "store_gb": round(disk / 2**30, 3)}))


def minor_faults() -> int:
    """Page faults this process has taken that needed no disk (the system handing it fresh, zeroed pages)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed_rounds(model, images: torch.Tensor, rounds: int) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """Seconds and page faults per call, each {"encode": [...], "paper": [...], "centred": [...]}: `rounds` rounds,
    each calling encode_image and then decompose in each convention on the same batch, after one warm-up call of
    each."""
    calls = {"encode": lambda: model.encode_image(images)}
    calls.update({c: (lambda c=c: decompose(model, images, convention=c)) for c in CONVENTIONS})
    times = {name: [] for name in calls}
    faults = {name: [] for name in calls}
    with torch.no_grad():
        for fn in calls.values():
            fn()  # warm-up: one-off costs (weight folding, allocator growth) left out
        for _ in range(rounds):
            for name, fn in calls.items():
                before = minor_faults()
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
                faults[name].append(minor_faults() - before)
    return times, faults


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="timing rounds (each: encode_image, both conventions)")
    parser.add_argument("--images", type=int, nargs="+", default=[10_000, 30_000],
                        help="image counts for the head_contributions memory runs (one fresh process each)")
    parser.add_argument("--memory-batch-size", type=int, default=16,
                        help="head_contributions' batch size (its default: smaller batches keep the peak lower)")
    parser.add_argument("--memory-resolution", type=int, default=224, help="input size of the memory runs' ViT-B/32")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1; got {args.repeats}")
    if args.memory_child:
        memory_run(args.images[0], args.memory_batch_size, args.memory_resolution)
        return 0

    model = random_clip("ViT-B/32").float()
    images = torch.randn(args.batch_size, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    times, faults = timed_rounds(model, images, args.repeats)
    with torch.no_grad():
        expected = model.encode_image(images)
    encode_s = min(times["encode"])
    result = dict(model="ViT-B/32 (random weights)", device="cpu", threads=torch.get_num_threads(),
                  batch_size=args.batch_size, rounds=args.repeats, encode_image_s=round(encode_s, 3),
                  encode_image_page_faults=int(statistics.median(faults["encode"])))
    for convention in CONVENTIONS:
        seconds = min(times[convention])
        parts = decompose(model, images, convention=convention)
        total = parts.total()
        rel = ((total - expected).norm(dim=-1) / expected.norm(dim=-1)).max().item()
        result[f"decompose_{convention}_s"] = round(seconds, 3)
        result[f"decompose_over_encode_{convention}"] = round(seconds / encode_s, 3)
        result[f"decompose_{convention}_max_relative_error"] = float(f"{rel:.2e}")
        pairs = [d / e for d, e in zip(times[convention], times["encode"])]  # each round's own ratio
        result[f"decompose_over_encode_{convention}_paired_median"] = round(statistics.median(pairs), 3)
        result[f"decompose_{convention}_page_faults"] = int(statistics.median(faults[convention]))
        if convention == "paper":  # the fresh 4 KiB pages that the result's attention parts [B, L, N, H, d] fill
            result["decompose_result_pages"] = -(-parts.attn.numel() * parts.attn.element_size() // 4096)
    del model

    result.update(head_contributions_batch_size=args.memory_batch_size, head_contributions_storage="disk (float32)",
                  head_contributions_resolution=args.memory_resolution)
    peaks = []
    for n in args.images:
        start = time.perf_counter()
        child = subprocess.run([sys.executable, __file__, "--memory-child", "--images", str(n),
                                "--memory-batch-size", str(args.memory_batch_size),
                                "--memory-resolution", str(args.memory_resolution)],
                               capture_output=True, text=True, check=True)
        memory = json.loads(child.stdout.strip().splitlines()[-1])
        peaks.append(memory["peak_rss_gb"])
        result[f"head_contributions_{n}_images_s"] = round(time.perf_counter() - start, 1)
        result[f"head_contributions_{n}_images_store_gb"] = memory["store_gb"]
        result[f"head_contributions_{n}_images_peak_before_call_gb"] = memory["peak_before_call_gb"]
        result[f"head_contributions_{n}_images_peak_rss_gb"] = memory["peak_rss_gb"]
    result["head_contributions_peak_rss_gb"] = max(peaks)
    result["peak_growth"] = round(peaks[-1] / peaks[0], 3)
    print_result(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
