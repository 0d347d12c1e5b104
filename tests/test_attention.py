"""Coverage attention: the folded AAM equals the per-scale computation; the softmax is stable."""
from __future__ import annotations

import pytest
import torch

from abm_lib.attention import CoverageAttention, attention_focus, masked_softmax


@pytest.mark.parametrize("kernels", [(11, 5), (11,), (11, 3), (3, 5, 7)])
def test_folded_coverage_equals_the_per_scale_convolutions(kernels):
    torch.manual_seed(0)
    attention = CoverageAttention(feature_dim=12, hidden_dim=8, attention_dim=16, coverage_channels=32,
                                  coverage_kernels=kernels)
    coverage = torch.rand(3, 9, 14)
    unfolded = attention.unfolded_coverage(coverage)  # (B, A, H, W), official order of operations
    folded = attention.folded_coverage(coverage, attention.folded_coverage_kernel())  # (B, H*W, A)
    biases = sum(p.bias for p in attention.coverage_projections)  # folded into project_features
    folded = (folded + biases).transpose(1, 2).reshape(unfolded.shape)
    torch.testing.assert_close(folded, unfolded, atol=1e-5, rtol=1e-5)


def test_folded_kernel_passes_gradients_to_every_scale():
    attention = CoverageAttention(8, 8, 16, 8, (11, 5))
    attention.folded_coverage(torch.rand(2, 6, 6), attention.folded_coverage_kernel()).sum().backward()
    for module in [*attention.coverage_convs, *attention.coverage_projections]:
        assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0


def test_even_kernel_is_refused():
    with pytest.raises(ValueError, match="odd"):
        CoverageAttention(8, 8, 16, 8, (4,))


def test_masked_softmax_is_stable_and_ignores_padding():
    energy = torch.tensor([[[250.0, 249.0], [5.0, -1e4]]], dtype=torch.bfloat16)  # exp(250) overflows fp32
    mask = torch.tensor([[[1.0, 1.0], [1.0, 0.0]]])
    alpha = masked_softmax(energy, mask)
    assert torch.isfinite(alpha).all() and alpha.dtype == torch.float32
    assert alpha[0, 1, 1] == 0
    torch.testing.assert_close(alpha.sum(), torch.tensor(1.0))
    assert alpha[0, 0, 0] > alpha[0, 0, 1] > alpha[0, 1, 0]


def test_attention_sums_to_one_over_real_cells():
    torch.manual_seed(0)
    attention = CoverageAttention(12, 8, 16, 8, (11, 5))
    features = torch.randn(2, 12, 5, 7)
    mask = torch.ones(2, 5, 7)
    mask[1, 3:, :] = 0
    mask[1, :, 4:] = 0
    alpha = attention(attention.project_features(features), mask, torch.randn(2, 8), torch.rand(2, 5, 7),
                      attention.folded_coverage_kernel())
    torch.testing.assert_close(alpha.sum((1, 2)), torch.ones(2))
    assert alpha[1][mask[1] == 0].abs().max() == 0


def test_attention_focus_is_zero_when_uniform_one_when_on_a_cell_and_ignores_padding():
    mask = torch.zeros(3, 2, 4)
    mask[0, :, :3] = 1  # 6 real cells of 8
    mask[1] = 1
    mask[2, 0, 0] = 1  # a one-cell image
    alphas = torch.zeros(3, 2, 2, 4)
    alphas[0, 0] = mask[0] / 6  # uniform over the real cells
    alphas[0, 1, 1, 2] = 1  # all on one cell
    alphas[1, 0] = 1 / 8
    alphas[1, 1, 0, :2] = 0.5  # two cells of eight: 1 - log 2 / log 8 = 2/3
    alphas[2, :, 0, 0] = 1
    focus = attention_focus(alphas, mask)
    assert torch.allclose(focus[:2], torch.tensor([[0.0, 1.0], [0.0, 2 / 3]]), atol=1e-6)
    assert focus[2].isnan().all()
