"""The mutual learning loss, and which target token each KL pair of rows predicts."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from abm_lib.data import decoder_sequences
from abm_lib.loss import LossConfig, bidirectional_loss, kl_row_pairs, mutual_kl, sequence_cross_entropy
from abm_lib.vocab import default_vocabulary

VOCAB = default_vocabulary()


def paired_tokens(labels: list[list[str]], alignment: str) -> list[tuple[str, str]]:
    """For each KL pair: (token the L2R row predicts, token the R2L row predicts), as 'sample:token'."""
    _, targets, _, lengths = decoder_sequences([VOCAB.encode(t) for t in labels], VOCAB)
    l2r_rows, r2l_rows = kl_row_pairs(lengths, targets["l2r"].shape[1], alignment)
    name = lambda direction, b, t: f"{'AB'[b]}:{VOCAB.tokens[targets[direction][b, t]]}"  # noqa: E731
    return [(name("l2r", *l), name("r2l", *r)) for l, r in zip(l2r_rows.tolist(), r2l_rows.tolist())]


MIXED = [["a", "b", "c"], ["d", "e"]]  # sample A (3 tokens) and sample B (2 tokens)


def test_target_alignment_pairs_rows_that_predict_the_same_token():
    assert paired_tokens(MIXED, "target") == [
        ("A:a", "A:a"), ("A:b", "A:b"), ("A:c", "A:c"), ("B:d", "B:d"), ("B:e", "B:e")]


def test_official_alignment_on_mixed_lengths_pairs_other_tokens_and_other_samples():
    # Worked out by hand from the official train.py: time-major rows, step 0 dropped, R2L flipped
    # over the padded length, each branch's own real rows taken in (step, sample) order.
    assert paired_tokens(MIXED, "official") == [
        ("A:b", "A:sos"), ("B:e", "A:a"), ("A:c", "B:sos"), ("B:eos", "A:b"), ("A:eos", "B:d")]


def test_official_alignment_on_equal_lengths_pairs_rows_two_tokens_apart():
    pairs = paired_tokens([["a", "b", "c", "d"]], "official")
    assert pairs == [("A:b", "A:sos"), ("A:c", "A:a"), ("A:d", "A:b"), ("A:eos", "A:c")]


def test_sequence_cross_entropy_averages_per_sequence_then_batch():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[1, 2, 3], [4, 0, 0]])
    mask = torch.tensor([[1.0, 1, 1], [1, 0, 0]])
    per_token = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(2, 3)
    expected = (per_token[0].mean() + per_token[1, 0]) / 2
    torch.testing.assert_close(sequence_cross_entropy(logits, targets, mask), expected)


def test_kl_is_zero_for_identical_paired_rows_and_positive_otherwise():
    torch.manual_seed(0)
    lengths = torch.tensor([3, 2])
    l2r = torch.randn(2, 4, 7)
    r2l = torch.zeros_like(l2r)
    for b, n in enumerate(lengths.tolist()):  # R2L step n-1-t holds the L2R row of step t
        for t in range(n):
            r2l[b, n - 1 - t] = l2r[b, t]
    assert mutual_kl(l2r, r2l, lengths, 4.0, "target").abs() < 1e-6
    assert mutual_kl(l2r, r2l, lengths, 4.0, "official") > 0.01


def test_kl_matches_the_official_formula_and_reaches_both_branches():
    torch.manual_seed(0)
    lengths = torch.tensor([2, 2])
    l2r = torch.randn(2, 3, 6, requires_grad=True)
    r2l = torch.randn(2, 3, 6, requires_grad=True)
    kl = mutual_kl(l2r, r2l, lengths, 4.0, "target")
    rows = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
    mirrored = torch.tensor([[0, 1], [0, 0], [1, 1], [1, 0]])
    official = torch.nn.KLDivLoss(reduction="batchmean")(
        F.log_softmax(r2l[mirrored[:, 0], mirrored[:, 1]] / 4, -1), F.softmax(l2r[rows[:, 0], rows[:, 1]] / 4, -1)) * 16
    torch.testing.assert_close(kl, official)
    kl.backward()
    assert l2r.grad.abs().sum() > 0 and r2l.grad.abs().sum() > 0


def test_bidirectional_loss_sums_its_terms():
    torch.manual_seed(0)
    inputs, targets, mask, lengths = decoder_sequences([[5, 6, 7], [8, 9]], VOCAB)
    logits = {d: torch.randn(2, 4, len(VOCAB)) for d in ("l2r", "r2l")}
    config = LossConfig(kl_weight=0.5, temperature=4.0)
    terms = bidirectional_loss(logits, targets, mask, lengths, config)
    torch.testing.assert_close(terms.total, terms.l2r + terms.r2l + 0.5 * terms.kl)
    only_l2r = bidirectional_loss({"l2r": logits["l2r"]}, targets, mask, lengths, config)
    torch.testing.assert_close(only_l2r.total, terms.l2r)


def test_unknown_alignment_is_refused():
    with pytest.raises(ValueError, match="kl_alignment"):
        LossConfig(kl_alignment="mirror")
