"""Device discipline, checked without a GPU: the analysis functions keep every tensor on the model's device.

Learners run the course on Colab (cuda) and on Macs (mps). There, a tensor made without `device=` (`torch.ones(B)`,
`torch.eye(P)`) lands on the CPU, and the first op that mixes it with the model's tensors raises. CI has no GPU, so
this test plays "another device" with PyTorch's `meta` device (shapes and dtypes only, no data, no arithmetic):

- the model (and, in one variant, its inputs) lives on `meta`; every call runs under `DeviceGuard`, a dispatch mode
  that sees every aten op, the backward pass included, and raises `WrongDevice` when one op gets tensors on two
  devices (0-dim CPU scalars and CPU index tensors excepted, as on cuda). The check is the guard's own: meta's kernels
  alone let `meta @ cpu` (matmul, einsum) through silently.
- what a real device can do and meta cannot, the guard fakes: a read of a value on the host (`.item()`, `int()`,
  `bool()`: a zero) and a copy to the CPU (`.cpu()`: seeded random values of the same shape and dtype; a bool mask
  comes back non-empty). `.numpy()` of a meta tensor still raises, as it does for a cuda tensor, so metrics must
  call `.cpu()` first.
- every returned tensor must be on the model's device (head_contributions: on the CPU, by design).

"cpu inputs" cases pass images and text embeddings on the CPU to a model on `meta`: what a notebook does with
`preprocess(...)` output and a model on the GPU. The functions must move them to the model's device themselves.
"""
from __future__ import annotations

import dataclasses
import traceback

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from course_utils import ablation, compare_maps, decompose, heatmaps, inside_vit, legrad, metrics, models, textspan
from course_utils.decompose import HeadContributions

aten = torch.ops.aten
META = torch.device("meta")
CPU = torch.device("cpu")
ARCHS = ("ToyCLIP", "ViT-B/32")  # ToyCLIP splits its width into 8 heads of 16; ViT-B/32 is clip's own 12 of 64
P = 3  # prompts


class WrongDevice(AssertionError):
    """An op got tensors on two devices: on a GPU this line raises."""


# Ops that legitimately take tensors on two devices: copies, and (as on cuda) CPU index tensors.
CROSS_DEVICE_OK = {aten.copy_.default, aten._to_copy.default, aten.lift_fresh.default, aten.lift_fresh_copy.default,
                   aten.index.Tensor, aten.index_put_.default, aten.index_put.default, aten._index_put_impl_.default}


def _where() -> str:
    """The innermost course_utils line on the stack: where the mixing op was called."""
    for frame in reversed(traceback.extract_stack()):
        if "course_utils" in frame.filename:
            return f"{frame.filename.split('course_utils')[-1].lstrip('/')}:{frame.lineno} in {frame.name}: {frame.line}"
    return "outside course_utils"


def _flat_tensors(x):
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (list, tuple)):
        for y in x:
            yield from _flat_tensors(y)
    elif isinstance(x, dict):
        for y in x.values():
            yield from _flat_tensors(y)


class DeviceGuard(TorchDispatchMode):
    """Raise WrongDevice on any op mixing devices; fake the host reads and CPU copies that meta cannot do."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if func is aten._local_scalar_dense.default and first is not None and first.is_meta:
            return False if first.dtype == torch.bool else (0.0 if first.is_floating_point() else 0)
        if func is aten._to_copy.default and first is not None and first.is_meta and kwargs.get("device") == CPU:
            return _host_copy(first.shape, kwargs.get("dtype") or first.dtype)
        if func not in CROSS_DEVICE_OK:
            tensors = list(_flat_tensors((args, kwargs)))
            devices = {t.device for t in tensors if not (t.device == CPU and t.dim() == 0)}
            if len(devices) > 1:
                shapes = ", ".join(f"{tuple(t.shape)} on {t.device}" for t in tensors)
                raise WrongDevice(f"{func} mixes devices ({shapes}) at {_where()}")
        return func(*args, **kwargs)


def _host_copy(shape, dtype) -> torch.Tensor:
    """What a meta tensor "copied" to the CPU holds: seeded random values, so the CPU code after it has real numbers."""
    values = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    if dtype == torch.bool:
        mask = values < 0.5
        mask.view(-1)[:1] = True  # never empty
        return mask
    return values.to(dtype) if dtype.is_floating_point else torch.zeros(shape, dtype=dtype)


def _returned_tensors(x):
    """Every tensor in a result: tensors, and those inside dataclasses, dicts, lists and tuples."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        x = [getattr(x, f.name) for f in dataclasses.fields(x)]
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (list, tuple, dict)):
        for y in (x.values() if isinstance(x, dict) else x):
            yield from _returned_tensors(y)


def guarded(fn, *args, expect=META, **kwargs):
    """fn(*args, **kwargs) under DeviceGuard; every tensor it returns must be on `expect`."""
    with DeviceGuard():
        out = fn(*args, **kwargs)
    wrong = [f"{tuple(t.shape)} on {t.device}" for t in _returned_tensors(out) if t.device != expect]
    assert not wrong, f"{getattr(fn, '__name__', fn)} returned tensors off {expect}: {wrong}"
    return out


@pytest.fixture(scope="module", params=ARCHS)
def meta_model(request):
    """A random CLIP of the real shapes, built straight on meta (no weights are ever computed)."""
    with torch.device("meta"):  # only the build: the calls under test run with the default device untouched
        model = models.random_clip(request.param)
    assert all(p.is_meta for p in model.parameters())
    return model


def _tensor(*shape, device) -> torch.Tensor:
    """Shapes only on meta; real (seeded) numbers on the CPU, where arithmetic is really done."""
    if device == META:
        return torch.empty(*shape, device=META)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))


def _inputs(model, device: torch.device):
    """Two images [2, 3, R, R] and P text embeddings [P, d] for this model, on `device`."""
    visual = models.vit_visual(model, "test")
    r, d = visual.input_resolution, visual.proj.shape[1]
    return _tensor(2, 3, r, r, device=device), _tensor(P, d, device=device)


def _legrad_all_layers(model, image, texts, normalize):
    n = len(models.vit_visual(model, "test").transformer.resblocks)
    return legrad.legrad(model, image, texts, layers=range(n), normalize=normalize)


# name -> fn(model, images [2, 3, R, R], texts [P, d]), every input on the device the case asks for
MODEL_CASES = {
    "trace_vit": lambda m, im, t: inside_vit.trace_vit(m, im),
    "trace_vit_cls_only": lambda m, im, t: inside_vit.trace_vit(m, im, cls_only=True),
    "decompose": lambda m, im, t: decompose.decompose(m, im, normalize=False),
    "decompose_normalized": lambda m, im, t: decompose.decompose(m, im, normalize=True),
    "token_maps": lambda m, im, t: heatmaps.token_maps(m, im, t),
    "token_maps_layers_heads": lambda m, im, t: heatmaps.token_maps(m, im, t, layers=[-1], heads=[0, 1]),
    "textspan_heatmap": lambda m, im, t: heatmaps.textspan_heatmap(m, im[0], t),
    "textspan_heatmap_absolute": lambda m, im, t: heatmaps.textspan_heatmap(m, im[0], t, relative=False),
    "legrad": lambda m, im, t: legrad.legrad(m, im[0], t),
    "legrad_unnormalized": lambda m, im, t: legrad.legrad(m, im[0], t, normalize=False),
    "legrad_all_layers": lambda m, im, t: _legrad_all_layers(m, im[0], t, True),
    "legrad_all_layers_unnormalized": lambda m, im, t: _legrad_all_layers(m, im[0], t, False),
    "legrad_in_no_grad": lambda m, im, t: torch.no_grad()(legrad.legrad)(m, im[0], t),
    "raw_attention": lambda m, im, t: compare_maps.raw_attention(m, im[0]),
    "rollout": lambda m, im, t: compare_maps.rollout(m, im[0]),
    **{f"method_maps_{method}": (lambda method: lambda m, im, t: compare_maps.method_maps(
        method, m, im[0], t[:2], [0, 2], t))(method) for method in compare_maps.METHODS},
}


@pytest.mark.parametrize("inputs", ["meta_inputs", "cpu_inputs"])
@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_model_functions_stay_on_the_model_device(case, inputs, meta_model):
    images, texts = _inputs(meta_model, META if inputs == "meta_inputs" else CPU)
    guarded(MODEL_CASES[case], meta_model, images, texts)


@pytest.mark.parametrize("inputs", ["meta_inputs", "cpu_inputs"])
@pytest.mark.parametrize("normalize", [True, False])
def test_head_contributions_streams_on_the_model_device(normalize, inputs, meta_model):
    """Per-batch work on the model's device; only the small per-image results come back to the CPU (by design)."""
    images, _ = _inputs(meta_model, META if inputs == "meta_inputs" else CPU)
    batches = [(images, torch.tensor([0, 1])), (images[:1], torch.tensor([2]))]  # what a DataLoader yields
    c = guarded(decompose.head_contributions, meta_model, batches, normalize=normalize, progress=False, expect=CPU)
    assert c.heads.shape[0] == c.labels.shape[0] == 3


@pytest.mark.parametrize("inputs", ["meta_inputs", "cpu_inputs"])
def test_readout_accuracy_on_the_model_device(inputs, meta_model):
    images, texts = _inputs(meta_model, META if inputs == "meta_inputs" else CPU)
    out = guarded(legrad.readout_accuracy, meta_model, images, torch.tensor([0, 2]), texts)
    assert len(out["token_mean"]) == len(meta_model.visual.transformer.resblocks)


def test_rollout_from_probs_on_the_probs_device():
    guarded(compare_maps.rollout_from_probs, torch.empty(4, 8, 65, 65, device=META))


# TextSpan: head outputs come from head_contributions (CPU), text embeddings from encode_texts (the model's device).
PLACEMENTS = dict(argvalues=[(META, META), (CPU, META), (META, CPU)], ids=["meta-meta", "cpu-meta", "meta-cpu"])


@pytest.mark.parametrize("outputs_on,texts_on", **PLACEMENTS)
def test_textspan_on_the_outputs_device(outputs_on, texts_on):
    outputs, texts = _tensor(20, 64, device=outputs_on), _tensor(30, 64, device=texts_on)
    result = guarded(textspan.textspan, outputs, texts, n_texts=3, rank=8, expect=outputs_on)
    assert result.directions.shape == (3, 64)
    guarded(result.reconstruct, outputs, expect=outputs_on)


def _contributions(device, n=6, L=2, H=4, d=16) -> HeadContributions:
    return HeadContributions(_tensor(n, L, H, d, device=device), _tensor(n, L, d, device=device),
                             _tensor(n, L + 1, d, device=device), torch.zeros(n, dtype=torch.long))


@pytest.mark.parametrize("contrib_on,classifier_on", **PLACEMENTS)
@pytest.mark.parametrize("fn", ["textspan_all", "replace_with_spans", "mean_ablate", "cumulative_layer_ablation"])
def test_textspan_and_ablation_on_the_contributions_device(fn, contrib_on, classifier_on):
    c, texts = _contributions(contrib_on), _tensor(10, 16, device=classifier_on)
    if fn == "textspan_all":
        guarded(textspan.textspan_all, c, texts, layers=[1], n_texts=2, rank=4, expect=contrib_on)
    elif fn == "replace_with_spans":
        spans = guarded(textspan.textspan_all, c, texts, layers=[1], n_texts=2, rank=4, expect=contrib_on)
        guarded(textspan.replace_with_spans, c, spans, expect=contrib_on)
    elif fn == "mean_ablate":
        guarded(ablation.mean_ablate, c, texts, attn_layers=[0], heads=[(1, 2)], mlp_terms=[0], cls_layers=[1])
    else:
        guarded(ablation.cumulative_layer_ablation, c, texts)


# Metrics and overlays: maps straight from the model's device, masks as arrays or as tensors on that device.
METRIC_CASES = {
    "pointing_hit": lambda h, m: metrics.pointing_hit(h, m, 2),
    "binarize": lambda h, m: metrics.binarize(h),
    "pixel_accuracy": lambda h, m: metrics.pixel_accuracy(metrics.binarize(h), m),
    "pixel_accuracy_tensor_prediction": lambda h, m: metrics.pixel_accuracy(h > 0, m),
    "mean_iou": lambda h, m: metrics.mean_iou(metrics.binarize(h), m),
    "mean_iou_tensor_prediction": lambda h, m: metrics.mean_iou(h > 0, m),
    "average_precision": lambda h, m: metrics.average_precision(h, m),
    "segmentation_scores": lambda h, m: metrics.segmentation_scores(h, m),
    "overlay": lambda h, m: heatmaps.overlay(np.zeros((8, 8, 3)), h),
    "overlay_tensor_image": lambda h, m: heatmaps.overlay(torch.empty(8, 8, 3, device=META), h),
}


@pytest.mark.parametrize("mask", ["array_mask", "tensor_mask"])
@pytest.mark.parametrize("case", list(METRIC_CASES))
def test_metrics_accept_maps_on_any_device(case, mask):
    heat = torch.empty(8, 8, device=META)
    m = np.ones((8, 8), bool) if mask == "array_mask" else torch.empty(8, 8, dtype=torch.bool, device=META)
    guarded(METRIC_CASES[case], heat, m, expect=CPU)  # numbers and arrays only


# The guard itself: it must raise on exactly the mistakes this file exists to catch.
@pytest.mark.parametrize("mistake,error", [
    (lambda x: x + torch.ones(x.shape[0]), WrongDevice),  # elementwise
    (lambda x: x @ torch.eye(x.shape[0]), WrongDevice),  # matmul: meta's own kernel lets this one through
    (lambda x: torch.einsum("ij,jk->ik", x, torch.eye(x.shape[0])), WrongDevice),  # the same
    (lambda x: torch.cat([x, torch.zeros(1, x.shape[1])]), WrongDevice),
    # LeGrad's batched backward: autograd checks grad_outputs itself ("expected device cuda:0 but got cpu" on a GPU)
    (lambda x: torch.autograd.grad((x.requires_grad_() * 2).sum(dim=1), x, torch.eye(2), is_grads_batched=True),
     RuntimeError),
], ids=["add", "matmul", "einsum", "cat", "batched_grad"])
def test_a_cpu_tensor_next_to_a_meta_one_raises(mistake, error):
    x = torch.empty(2, 2, device=META)
    with pytest.raises(error, match="device"), DeviceGuard(), torch.enable_grad():
        mistake(x)


def test_the_guard_lets_one_device_and_cpu_scalars_through():
    x = torch.empty(2, 2, device=META)
    with DeviceGuard():
        y = (x * 2 + torch.tensor(1.0)) @ torch.eye(2, device=x.device)
        assert y.is_meta and int(y.argmax()) == 0 and y.cpu().device == CPU
