"""The authors' LeGrad (legrad-torch 1.1 on open_clip <= 2.23.0) run on *our* model's weights, for cross-checks.

Both packages are test dependencies (`pip install -e .[tests]`); the course itself never needs them.
open_clip's `build_model_from_openai_state_dict` rounds the weights to fp16, so the fp32 weights are loaded
again afterwards: then the two image encoders agree to float precision.
"""
from __future__ import annotations

import contextlib
import io


def open_clip_twin(model):
    """An open_clip CLIP holding the same (fp32) weights as an openai `clip.model.CLIP` ViT.

    Used by: legrad_torch_maps and tests/test_legrad.py.
    """
    try:
        from open_clip.model import build_model_from_openai_state_dict
    except ImportError as err:
        raise ImportError("open_clip_torch<=2.23.0 is a test dependency: pip install -e '.[tests]'") from err
    heads = model.visual.transformer.resblocks[0].attn.num_heads
    if heads != model.visual.transformer.width // 64:
        raise ValueError(f"open_clip infers width // 64 heads; this model has {heads}. Use an openai architecture.")
    state = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
    twin = build_model_from_openai_state_dict(dict(state)).float()
    twin.load_state_dict(state)
    return twin.eval()


def legrad_torch_maps(model, layer_index: int = -2):
    """A function (image [3, R, R], unit text embeddings [P, d]) -> [P, R, R], computed by legrad-torch.

    Taught in: notebook 08, "LeGrad, step by step".
    """
    import warnings

    with warnings.catch_warnings():  # legrad-torch imports a timm path that timm marks as deprecated
        warnings.simplefilter("ignore", FutureWarning)
        from legrad import LeWrapper

    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Activating necessary hooks ..."
        wrapped = LeWrapper(open_clip_twin(model), layer_index=layer_index)
    # prompts.clone(): class embeddings come from inference mode (zero_shot_classifier), and legrad-torch multiplies
    # them into its autograd graph, which refuses inference tensors; our legrad reads them without autograd.
    return lambda image, prompts: wrapped.compute_legrad(image=image[None], text_embedding=prompts.clone())[0].detach()
