"""LeGrad cost: our LeGrad against the authors' legrad-torch, and our TextSpan map against our LeGrad, by prompt count.

    .venv/bin/python benchmarks/legrad_cost.py [--prompts 1 5 100] [--repeats 3] [--no-memory]

openai's ViT-B/16 architecture with random weights (no download; cost doesn't depend on the weights), on CPU,
one 224 px image and P unit text embeddings for each P in `--prompts`. legrad-torch runs on an open_clip copy of the
*same* fp32 weights, so the benchmark also reports how far the two maps are apart (on the first 3 prompts). Each time is the best of
`--repeats` after a warm-up, all in this run. Peak memory: the extra resident memory of one call at the largest P,
each method in a fresh process (Linux; see compare_maps.peak_memory_mb).

Why several P: a ratio of map costs means nothing without the number of prompts. `encode_image_s` is one plain forward
pass, the floor of any map that needs the model's output; our TextSpan map (`decompose.text_scores`) costs about that
for any P. Our LeGrad adds one batched backward pass whose cost grows with P and with the blocks it reads;
legrad-torch runs the image once per prompt. The default's largest P, 100, is the comparison's own: the fair table of
`compare_maps` (and notebook 08) scores maps relative to all 100 class prompts, so each image needs 100 maps.
One row per P, then one JSON object: `by_prompts` holds every P's seconds and ratios, and the top-level ratios
(`ours_over_legrad_torch`, `textspan_over_legrad` on the last two blocks as legrad-torch does,
`textspan_over_legrad_all_layers` on every block as LeGrad's paper aggregates, `textspan_over_encode_image`,
`unfolded_decomposition_over_encode_image`: the decomposition in the authors' order of work,
decompose.unfolded_decompose, with no folding) are those at the largest P, named by `prompts`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course_utils.compare_maps import cost_ratios, map_costs, peak_memory_mb  # noqa: E402
from course_utils.legrad import legrad  # noqa: E402
from course_utils.legrad_twin import legrad_torch_maps  # noqa: E402
from course_utils.models import random_clip  # noqa: E402

ARCH = "ViT-B/16"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, nargs="+", default=[1, 5, 100],
                        help="prompt counts to time (default 1 5 100; 100 is the comparison's class prompts)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the per-method peak-memory processes")
    args = parser.parse_args(argv)
    if min(args.prompts) < 1:
        parser.error(f"--prompts must be at least 1; got {args.prompts}")
    counts = sorted(set(args.prompts))

    model = random_clip(ARCH).float()
    image = torch.randn(3, 224, 224, generator=torch.Generator().manual_seed(0))
    all_prompts = F.normalize(torch.randn(counts[-1], 512, generator=torch.Generator().manual_seed(1)), dim=-1)
    theirs_fn = legrad_torch_maps(model, layer_index=-2)  # raises here if legrad-torch is missing: it is the baseline
    diff = (legrad(model, image, all_prompts[:3]) - theirs_fn(image, all_prompts[:3])).abs().max().item()
    by_prompts = {}
    print(f"{'prompts':>7} {'forward':>8} {'TextSpan':>9} {'LeGrad 2':>9} {'LeGrad all':>10} {'legrad-torch':>12}"
          f" {'TS/LeGrad 2':>11} {'ours/l-torch':>12}   (seconds per map, {ARCH}, CPU)")
    for p in counts:
        costs = map_costs(model, image, all_prompts[:p], args.repeats)  # best of --repeats after a warm-up, this run
        row = dict(encode_image_s=round(costs["encode_image"], 3), textspan_map_s=round(costs["textspan_map"], 3),
                   ours_legrad_s=round(costs["legrad_last2"], 3), ours_legrad_all_layers_s=round(costs["legrad_all"], 3),
                   legrad_torch_s=round(costs["legrad_torch"], 3),
                   unfolded_decomposition_s=round(costs["unfolded_decomposition"], 3),
                   **{k: round(v, 3) for k, v in cost_ratios(costs).items()})
        by_prompts[p] = row
        print(f"{p:>7} {row['encode_image_s']:>8.3f} {row['textspan_map_s']:>9.3f} {row['ours_legrad_s']:>9.3f} "
              f"{row['ours_legrad_all_layers_s']:>10.3f} {row['legrad_torch_s']:>12.3f} "
              f"{row['textspan_over_legrad']:>11.3f} {row['ours_over_legrad_torch']:>12.3f}")
    largest = by_prompts[counts[-1]]
    result = dict(model=f"{ARCH} (random weights)", device="cpu", threads=torch.get_num_threads(), prompts=counts[-1],
                  max_abs_map_difference=float(f"{diff:.2e}"),
                  **{k: v for k, v in largest.items() if "_over_" in k})
    if not args.no_memory:
        del model, theirs_fn
        for key, method in (("legrad_torch", "legrad_torch"), ("ours_legrad", "legrad_last2"), ("textspan_map", "textspan")):
            result[f"{key}_peak_extra_mb"] = peak_memory_mb(method, ARCH, counts[-1])
    result["by_prompts"] = by_prompts
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
