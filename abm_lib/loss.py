"""Bi-directional mutual learning loss: CE(L2R) + CE(R2L) + weight * T^2 * KL(p_L2R || p_R2L).

For a label y_1..y_n, L2R step t predicts y_{t+1} (t < n) and eos at t = n; R2L step s
predicts y_{n-s} (s < n) and sos at s = n. Two KL pairings of their output rows:

- "target" (default, what the paper describes): L2R step t with R2L step n-1-t, so
  both rows predict the same token y_{t+1}; special-token rows are left out.
- "official" (the official train.py): time-major outputs, step 0 of both dropped,
  R2L flipped in time over the *padded* length, then each branch's own non-padded
  rows taken in (time, sample) order and paired by position. With equal lengths this
  pairs rows two tokens apart; with mixed lengths it pairs rows of different samples.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

KL_ALIGNMENTS = ("target", "official")


@dataclass
class LossConfig:
    """Official values: KL weight 0.5, temperature 4."""

    kl_weight: float = 0.5
    temperature: float = 4.0
    kl_alignment: str = "target"

    def __post_init__(self) -> None:
        if self.kl_alignment not in KL_ALIGNMENTS:
            raise ValueError(f"kl_alignment must be one of {KL_ALIGNMENTS}, got {self.kl_alignment!r}")


@dataclass
class LossTerms:
    """The total loss and its parts (the parts detached, for logging)."""

    total: torch.Tensor
    l2r: torch.Tensor
    r2l: torch.Tensor
    kl: torch.Tensor


def sequence_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """CE averaged over each sequence's own tokens, then over the batch (as the official code)."""
    per_token = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
    per_token = per_token.view_as(targets) * target_mask
    return (per_token.sum(1) / target_mask.sum(1)).mean()


def kl_row_pairs(lengths: torch.Tensor, steps: int, alignment: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(sample, step) index pairs of the L2R rows and the R2L rows the KL compares: two (N, 2) tensors.

    lengths: label lengths n_b without eos; steps: T, the padded decoder length (max n + 1).
    """
    lengths = lengths.tolist()
    if alignment == "target":
        l2r = [(b, t) for b, n in enumerate(lengths) for t in range(n)]
        r2l = [(b, n - 1 - t) for b, n in enumerate(lengths) for t in range(n)]
    elif alignment == "official":
        # L2R rows at steps 1..T-1 that are real (t <= n_b), time-major.
        l2r = [(b, t) for t in range(1, steps) for b, n in enumerate(lengths) if t <= n]
        # R2L steps 1..T-1 flipped in time: position j holds step T-1-j; real ones kept, time-major.
        r2l = [(b, steps - 1 - j) for j in range(steps - 1) for b, n in enumerate(lengths) if steps - 1 - j <= n]
    else:
        raise ValueError(f"unknown KL alignment {alignment!r}")
    as_tensor = lambda pairs: torch.tensor(pairs, dtype=torch.long).view(-1, 2)  # noqa: E731
    return as_tensor(l2r), as_tensor(r2l)


def mutual_kl(l2r_logits: torch.Tensor, r2l_logits: torch.Tensor, lengths: torch.Tensor,
              temperature: float, alignment: str) -> torch.Tensor:
    """Mean over paired rows of KL(softmax(L2R/T) || softmax(R2L/T)), times T^2; gradients reach both."""
    l2r_rows, r2l_rows = kl_row_pairs(lengths, l2r_logits.shape[1], alignment)
    l2r_rows, r2l_rows = l2r_rows.to(l2r_logits.device), r2l_rows.to(l2r_logits.device)
    log_p = F.log_softmax(l2r_logits[l2r_rows[:, 0], l2r_rows[:, 1]].float() / temperature, dim=-1)
    log_q = F.log_softmax(r2l_logits[r2l_rows[:, 0], r2l_rows[:, 1]].float() / temperature, dim=-1)
    kl = F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
    return kl * temperature**2


def bidirectional_loss(logits: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                       target_mask: torch.Tensor, lengths: torch.Tensor, config: LossConfig) -> LossTerms:
    """The ABM loss from per-direction logits (B,T,K) and targets (B,T); L2R only if R2L is absent."""
    l2r = sequence_cross_entropy(logits["l2r"], targets["l2r"], target_mask)
    zero = l2r.new_zeros(())
    if "r2l" not in logits:
        return LossTerms(l2r, l2r.detach(), zero, zero)
    r2l = sequence_cross_entropy(logits["r2l"], targets["r2l"], target_mask)
    kl = mutual_kl(logits["l2r"], logits["r2l"], lengths, config.temperature, config.kl_alignment)
    total = l2r + r2l + config.kl_weight * kl
    return LossTerms(total, l2r.detach(), r2l.detach(), kl.detach())
