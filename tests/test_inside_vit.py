"""Notebook 04's claims, on openai's real architectures with random weights."""
import pytest
import torch

from course_utils import inside_vit as iv
from course_utils.models import random_clip


@pytest.fixture(scope="module", params=["ViT-B/32", "ViT-B/16"])
def model(request):
    return random_clip(request.param)


@torch.no_grad()
def test_one_block_by_hand_equals_the_models_block(model):
    visual = model.visual
    x = iv.patch_tokens(visual, torch.randn(2, 3, 224, 224))  # [B, N, D], the first block's input
    for i in (0, len(visual.transformer.resblocks) - 1):
        block = visual.transformer.resblocks[i]
        theirs = block(x.transpose(0, 1)).transpose(0, 1)  # openai's blocks take [N, B, D]
        ours = iv.residual_block(x, iv.block_params(block), block.attn.num_heads)
        rel = (ours - theirs).abs().max() / theirs.abs().max()
        assert rel < 1e-5, f"block {i}: relative difference {rel:.2e}"
        x = theirs


@torch.no_grad()
def test_cls_block_is_the_block_at_cls_and_the_last_block_may_run_there_alone(model):
    visual = model.visual
    images = torch.randn(2, 3, 224, 224)
    x = iv.patch_tokens(visual, images)  # [B, N, D]
    block = visual.transformer.resblocks[0]
    probs, v, attn_out, mlp_out, out = iv.cls_block(block, x)
    full_probs, full_v, _ = iv.block_attention(block, x, cls_only=True)
    theirs = block(x.transpose(0, 1)).transpose(0, 1)[:, :1]  # [B, 1, D]
    assert out.shape == theirs.shape == (2, 1, x.shape[-1]) and probs.shape == full_probs.shape
    assert (out - theirs).abs().max() / theirs.abs().max() < 1e-5
    assert torch.allclose(probs, full_probs, atol=1e-6) and torch.allclose(v, full_v, atol=1e-5)
    *_, last = iv.run_blocks(visual, images, cls_only=True, last_at_cls=True)
    *_, full = iv.run_blocks(visual, images, cls_only=True)
    assert last[-1].shape[1] == 1 and torch.allclose(last[-1][:, 0], full[-1][:, 0], atol=1e-4)


@torch.no_grad()
def test_patch_conv_is_a_linear_map_on_flattened_patches(model):
    visual = model.visual
    images = torch.randn(2, 3, 224, 224)
    patch = visual.conv1.kernel_size[0]
    conv = visual.conv1(images).flatten(2).transpose(1, 2)  # [B, g², D]
    linear = iv.patchify(images, patch) @ visual.conv1.weight.flatten(1).T
    assert linear.shape == conv.shape == (2, (224 // patch) ** 2, visual.conv1.out_channels)
    torch.testing.assert_close(linear, conv, atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_attention_and_cls_maps(model):
    visual = model.visual
    x = iv.patch_tokens(visual, torch.randn(1, 3, 224, 224))
    block = visual.transformer.resblocks[0]
    y = block.ln_1(x)
    theirs = block.attn(y.transpose(0, 1), y.transpose(0, 1), y.transpose(0, 1), need_weights=False)[0].transpose(0, 1)
    a = block.attn
    ours = iv.multihead_self_attention(y, a.in_proj_weight, a.in_proj_bias, a.out_proj.weight, a.out_proj.bias, a.num_heads)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    probs, _, _ = iv.block_attention(block, x)
    maps = iv.cls_attention_maps(probs)
    grid = 224 // visual.conv1.kernel_size[0]
    assert maps.shape == (1, a.num_heads, grid, grid)
    torch.testing.assert_close(maps.sum((-1, -2)), 1 - probs[:, :, 0, 0])  # everything CLS doesn't give itself


def test_quick_gelu_is_the_models_activation():
    x = torch.linspace(-5, 5, 101)
    from clip.model import QuickGELU

    torch.testing.assert_close(iv.quick_gelu(x), QuickGELU()(x))


def test_block_mlp_is_the_models_mlp_bit_for_bit_and_keeps_autograd(model):
    block = model.visual.transformer.resblocks[0]
    x = torch.randn(2, 50, block.mlp.c_fc.in_features)
    with torch.no_grad():
        theirs = block.mlp(x)
        ours = iv.block_mlp(block, x)  # QuickGELU in place: the same operations in the same order
    assert torch.equal(ours, theirs)
    leaf = x.clone().requires_grad_()
    iv.block_mlp(block, leaf).sum().backward()  # with autograd on, the module itself: backward still works
    expected = torch.autograd.grad(block.mlp(x.clone().requires_grad_()).sum(), block.mlp.c_fc.weight)[0]
    torch.testing.assert_close(torch.autograd.grad(iv.block_mlp(block, x.clone()).sum(), block.mlp.c_fc.weight)[0],
                               expected)
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0
