"""Batching: official area buckets, padding to multiples of 16, L2R and R2L sequences."""
from __future__ import annotations

import numpy as np
import pytest

from abm_lib.data import Example, bucket_by_area, collate, decoder_sequences, filter_trainable, padding_cost
from abm_lib.vocab import UnknownTokenError, default_vocabulary

VOCAB = default_vocabulary()


def example(height: int, width: int, tokens: int = 3, name: str = "x") -> Example:
    return Example(name, np.full((height, width), 255, dtype=np.uint8), list(range(2, 2 + tokens)))


def test_buckets_respect_image_count_and_pixel_budget():
    examples = [example(10, 10 * (i + 1)) for i in range(40)]
    batches = bucket_by_area(examples, max_images=16, max_pixels=2000)
    assert sorted(i for b in batches for i in b) == list(range(40))
    for batch in batches:
        largest = max(examples[i].image.size for i in batch)
        assert len(batch) <= 16 and (len(batch) == 1 or largest * len(batch) <= 2000)
    areas = [examples[i].image.size for b in batches for i in b]
    assert areas == sorted(areas)


def test_padding_cost_counts_what_the_padded_batch_computes():
    # One batch: a tall narrow and a short wide image pad to 32x48 each; labels of 1 and 5 tokens pad to 6 steps.
    examples = [example(30, 10, tokens=1), example(10, 40, tokens=5)]
    cost = padding_cost(examples, [[0, 1]])
    assert cost == {"images_per_batch": 2.0, "pixels": 350.0, "padded_pixels": 32 * 48, "steps": 4.0,
                    "padded_steps": 6.0}


def test_sequences_of_both_directions():
    inputs, targets, mask, lengths = decoder_sequences([[5, 6, 7], [8]], VOCAB)
    sos, eos = VOCAB.sos_id, VOCAB.eos_id
    assert inputs["l2r"][0].tolist() == [sos, 5, 6, 7] and targets["l2r"][0].tolist() == [5, 6, 7, eos]
    assert inputs["r2l"][0].tolist() == [eos, 7, 6, 5] and targets["r2l"][0].tolist() == [7, 6, 5, sos]
    assert targets["r2l"][1, :2].tolist() == [8, sos]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]] and lengths.tolist() == [3, 1]


def test_collate_pads_to_multiples_of_16_with_masks():
    batch = collate([example(20, 33), example(40, 17)], VOCAB)
    assert batch.images.shape == (2, 1, 48, 48)
    assert batch.image_mask[0].sum() == 20 * 33 and batch.image_mask[1, :40, :17].all()
    assert batch.images.max() == 1.0 and batch.images[0, 0, 20:].abs().sum() == 0


def test_filter_reports_what_it_leaves_out():
    kept, dropped = filter_trainable([example(10, 10), example(100, 100), example(5, 5, tokens=9)], 5000, 8)
    assert len(kept) == 1 and [d["reason"].split()[0] for d in dropped] == ["image", "label"]


def test_unknown_token_names_the_token_and_place():
    with pytest.raises(UnknownTokenError, match=r"'\\\\Pi' in test2014/RIT_2014_133"):
        VOCAB.encode(["x", "\\Pi"], where="test2014/RIT_2014_133")
