"""LeGrad cost: our LeGrad against the authors' legrad-torch, and our TextSpan map against our LeGrad.

    .venv/bin/python benchmarks/legrad_cost.py [--prompts 5] [--repeats 3] [--no-memory]

openai's ViT-B/16 architecture with random weights (no download; cost doesn't depend on the weights), on CPU,
one 224 px image and `--prompts` unit text embeddings. legrad-torch runs on an open_clip copy of the *same* fp32
weights, so the benchmark also reports how far the two maps are apart. Each time is the best of `--repeats`
after a warm-up, all in this run. Peak memory: the extra resident memory of one call, each method in a fresh
process (Linux; see compare_maps.peak_memory_mb).
`encode_image_s` is one plain forward pass, the floor of any map that needs the model's output: our TextSpan map
(`decompose.text_scores`) costs about that; LeGrad adds one backward pass per prompt and chosen block.
The last line is one JSON object with `ours_over_legrad_torch`, `textspan_over_legrad` (LeGrad on the last two
blocks, legrad-torch's default), `textspan_over_legrad_all_layers` (every block, as LeGrad's paper aggregates),
`textspan_over_encode_image` and `unfolded_decomposition_over_encode_image` (the same decomposition in the authors'
order of work, decompose.unfolded_decompose, with no folding).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course_utils.compare_maps import map_costs, peak_memory_mb  # noqa: E402
from course_utils.legrad import legrad  # noqa: E402
from course_utils.legrad_twin import legrad_torch_maps  # noqa: E402
from course_utils.models import random_clip  # noqa: E402
from course_utils.report import print_result  # noqa: E402

ARCH = "ViT-B/16"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the per-method peak-memory processes")
    args = parser.parse_args(argv)

    model = random_clip(ARCH).float()
    image = torch.randn(3, 224, 224, generator=torch.Generator().manual_seed(0))
    prompts = F.normalize(torch.randn(args.prompts, 512, generator=torch.Generator().manual_seed(1)), dim=-1)
    theirs_fn = legrad_torch_maps(model, layer_index=-2)  # raises here if legrad-torch is missing: it is the baseline
    costs = map_costs(model, image, prompts, args.repeats)  # every time in this run, best of --repeats after a warm-up
    forward_s, ours_s, ours_all_s = costs["encode_image"], costs["legrad_last2"], costs["legrad_all"]
    theirs_s, textspan_s = costs["legrad_torch"], costs["textspan_map"]
    diff = (legrad(model, image, prompts) - theirs_fn(image, prompts)).abs().max().item()
    result = dict(model=f"{ARCH} (random weights)", device="cpu", threads=torch.get_num_threads(), prompts=args.prompts,
                  encode_image_s=round(forward_s, 3), legrad_torch_s=round(theirs_s, 3), ours_legrad_s=round(ours_s, 3),
                  ours_legrad_all_layers_s=round(ours_all_s, 3), textspan_map_s=round(textspan_s, 3),
                  unfolded_decomposition_s=round(costs["unfolded_decomposition"], 3),
                  max_abs_map_difference=float(f"{diff:.2e}"))
    if not args.no_memory:
        del model, theirs_fn
        for key, method in (("legrad_torch", "legrad_torch"), ("ours_legrad", "legrad_last2"), ("textspan_map", "textspan")):
            result[f"{key}_peak_extra_mb"] = peak_memory_mb(method, ARCH, args.prompts)
    result["ours_over_legrad_torch"] = round(ours_s / theirs_s, 3)
    result["textspan_over_legrad"] = round(textspan_s / ours_s, 3)  # LeGrad on the last two blocks (legrad-torch's)
    result["textspan_over_legrad_all_layers"] = round(textspan_s / ours_all_s, 3)  # every block (LeGrad's paper)
    result["textspan_over_encode_image"] = round(textspan_s / forward_s, 3)  # 1.0 would be a plain forward pass
    # the decomposition in the authors' order of work (decompose.unfolded_decompose), against our TextSpan map
    result["unfolded_decomposition_over_encode_image"] = round(costs["unfolded_decomposition"] / forward_s, 3)
    print_result(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
