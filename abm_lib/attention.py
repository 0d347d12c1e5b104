"""Coverage attention with the Attention Aggregation Module (AAM).

    e_t = v^T tanh(U_a F + W_a h + sum_k U_k conv_k(beta_t)),   alpha_t = masked softmax(e_t)

beta_t is the coverage (sum of past attention maps); each scale k has its own coverage
kernel conv_k (1 -> C channels, k x k) and projection U_k (C -> A). Because conv_k and
U_k are both linear, sum_k U_k conv_k(beta) is one convolution with A output channels
whose kernel is U_k @ conv_k, zero-padded to the largest size and summed over k. The
folded kernel is rebuilt from the learned weights at every forward pass (so gradients
reach conv_k and U_k) and costs A*K*K multiply-adds per position instead of
C*sum(k*k) + len(k)*C*A.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CoverageAttention(nn.Module):
    """Additive attention over the feature grid, conditioned on multi-scale coverage."""

    def __init__(self, feature_dim: int, hidden_dim: int, attention_dim: int,
                 coverage_channels: int, coverage_kernels: tuple[int, ...]):
        super().__init__()
        if not coverage_kernels or any(k % 2 == 0 for k in coverage_kernels):
            raise ValueError(f"coverage kernels must be odd sizes, got {coverage_kernels}")
        self.coverage_kernels = tuple(coverage_kernels)
        self.feature_projection = nn.Conv2d(feature_dim, attention_dim, kernel_size=1)  # U_a
        self.hidden_projection = nn.Linear(hidden_dim, attention_dim, bias=False)  # W_a
        self.coverage_convs = nn.ModuleList(
            nn.Conv2d(1, coverage_channels, kernel_size=k, padding=k // 2, bias=False)
            for k in self.coverage_kernels
        )
        self.coverage_projections = nn.ModuleList(
            nn.Linear(coverage_channels, attention_dim) for _ in self.coverage_kernels
        )
        self.energy = nn.Linear(attention_dim, 1)  # v

    def project_features(self, features: torch.Tensor) -> torch.Tensor:
        """U_a F + all coverage biases, once per image: (B,D,H,W) -> (B, H*W, A)."""
        weight = self.feature_projection.weight.flatten(1)  # the 1x1 conv as a matrix (A, D)
        bias = self.feature_projection.bias + sum(p.bias for p in self.coverage_projections)
        return F.linear(features.flatten(2).transpose(1, 2), weight, bias)

    def folded_coverage_kernel(self) -> torch.Tensor:
        """The single (A,1,K,K) kernel equal to sum_k U_k conv_k (biases excluded)."""
        size = max(self.coverage_kernels)
        kernel = 0
        for conv, projection, k in zip(self.coverage_convs, self.coverage_projections, self.coverage_kernels):
            folded = projection.weight @ conv.weight.flatten(1)  # (A, k*k)
            pad = (size - k) // 2
            kernel = kernel + F.pad(folded.view(-1, 1, k, k), (pad, pad, pad, pad))
        return kernel

    def unfolded_coverage(self, coverage: torch.Tensor) -> torch.Tensor:
        """sum_k U_k conv_k(beta) computed scale by scale, as the official code does. (B,A,H,W)"""
        total = 0
        for conv, projection in zip(self.coverage_convs, self.coverage_projections):
            per_scale = conv(coverage.unsqueeze(1)).permute(0, 2, 3, 1)  # (B,H,W,C)
            total = total + projection(per_scale).permute(0, 3, 1, 2)
        return total

    @staticmethod
    def folded_coverage(coverage: torch.Tensor, coverage_kernel: torch.Tensor) -> torch.Tensor:
        """The folded convolution of beta (B,H,W) as patches @ kernel: (B, H*W, A).

        A convolution with one input channel is a slow case for oneDNN; gathering the
        K*K neighbourhood of every cell and multiplying by the (K*K, A) kernel is the
        same arithmetic and measured 2x faster here (forward and backward).
        """
        size = coverage_kernel.shape[-1]
        patches = F.unfold(coverage.unsqueeze(1).to(coverage_kernel.dtype), size, padding=size // 2)
        return patches.transpose(1, 2) @ coverage_kernel.flatten(1).t()

    def forward(self, projected_features: torch.Tensor, feature_mask: torch.Tensor, hidden: torch.Tensor,
                coverage: torch.Tensor, coverage_kernel: torch.Tensor) -> torch.Tensor:
        """Attention weights alpha (B,H,W), summing to 1 over each image's real cells.

        projected_features: project_features(F), (B, H*W, A); coverage: beta (B,H,W);
        coverage_kernel: folded_coverage_kernel(), computed once per forward pass.
        """
        query = self.hidden_projection(hidden).unsqueeze(1)  # (B, 1, A)
        scores = torch.tanh(projected_features + query + self.folded_coverage(coverage, coverage_kernel))
        energy = F.linear(scores, self.energy.weight, self.energy.bias)  # (B, H*W, 1)
        return masked_softmax(energy.view_as(coverage), feature_mask)


def masked_softmax(energy: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the (H,W) grid of the cells where mask is 1, in float32 with max-subtraction."""
    energy = energy.float().masked_fill(mask == 0, float("-inf"))
    return torch.softmax(energy.flatten(1), dim=1).view_as(energy)


def attention_focus(alphas: torch.Tensor, feature_mask: torch.Tensor) -> torch.Tensor:
    """How concentrated each attention map is: 1 - H(alpha) / log(n), per (image, step).

    alphas (B,T,H,W); n = the image's real cells. 0 for uniform attention (the model does not
    look anywhere in particular yet), 1 for all weight on one cell; NaN for one-cell images.
    """
    cells = feature_mask.flatten(1).sum(1).float()  # (B,)
    weights = alphas.float().flatten(2)
    entropy = -(weights * weights.clamp_min(1e-12).log()).sum(-1)  # (B,T)
    focus = 1 - entropy / cells.log()[:, None]
    return focus.masked_fill((cells <= 1)[:, None], float("nan"))
