"""Training data: prepared splits -> padded, masked batches with L2R and R2L sequences.

Batching follows the official recipe: images sorted by area, a batch filled until it
holds `max_images` or until (largest area in it) x (count) would exceed `max_pixels`.
Batches are formed once; each epoch only shuffles their order. Images over
`max_image_pixels` or labels over `max_label_length` tokens are left out of training
and reported (never silently).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data_prep.splits import Split, load_split

from .encoder import STRIDE
from .vocab import Vocabulary

log = logging.getLogger(__name__)


@dataclass
class Example:
    """One expression ready for the model: image (H,W) uint8 ink-on-black, token ids without sos/eos."""

    expression_id: str
    image: np.ndarray
    token_ids: list[int]


@dataclass
class Batch:
    """A padded batch. Images (B,1,H,W) in [0,1], H and W multiples of 16; masks are 1 on real data."""

    ids: list[str]
    images: torch.Tensor
    image_mask: torch.Tensor
    inputs: dict[str, torch.Tensor]  # direction -> (B,T) decoder inputs
    targets: dict[str, torch.Tensor]  # direction -> (B,T) targets
    target_mask: torch.Tensor  # (B,T)
    lengths: torch.Tensor  # (B,) label lengths without eos

    def to(self, device: torch.device | str, channels_last: bool = False) -> "Batch":
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        move = lambda d: {k: v.to(device, non_blocking=True) for k, v in d.items()}  # noqa: E731
        return Batch(self.ids, self.images.to(device).contiguous(memory_format=memory_format),
                     self.image_mask.to(device), move(self.inputs), move(self.targets),
                     self.target_mask.to(device), self.lengths)


def load_examples(split_dir: Path | str, vocab: Vocabulary, label_set: str = "v1") -> list[Example]:
    """A prepared split as Examples; an unknown token raises an error naming the expression."""
    split = load_split(split_dir)
    if len(split) == 0:
        raise ValueError(f"{split_dir}: the split is empty")
    return examples_from_split(split, vocab, label_set)


def examples_from_split(split: Split, vocab: Vocabulary, label_set: str = "v1") -> list[Example]:
    examples = []
    for sample in split.samples:
        if label_set not in sample.labels:
            raise KeyError(f"{split.name}/{sample.expression_id} has no '{label_set}' label")
        ids = vocab.encode(sample.labels[label_set], where=f"{split.name}/{sample.expression_id}")
        examples.append(Example(sample.expression_id, sample.image, ids))
    return examples


def filter_trainable(examples: list[Example], max_image_pixels: int,
                     max_label_length: int) -> tuple[list[Example], list[dict]]:
    """Drop what the official recipe skips in training; return the kept ones and the reasons."""
    kept, dropped = [], []
    for example in examples:
        pixels = example.image.size
        if pixels > max_image_pixels:
            dropped.append({"id": example.expression_id, "reason": f"image of {pixels} pixels > {max_image_pixels}"})
        elif len(example.token_ids) > max_label_length:
            dropped.append({"id": example.expression_id,
                            "reason": f"label of {len(example.token_ids)} tokens > {max_label_length}"})
        elif not example.token_ids:
            dropped.append({"id": example.expression_id, "reason": "empty label"})
        else:
            kept.append(example)
    for item in dropped:
        log.warning("left out of training: %s (%s)", item["id"], item["reason"])
    return kept, dropped


def bucket_by_area(examples: list[Example], max_images: int, max_pixels: int) -> list[list[int]]:
    """Batches of example indices, sorted by image area (the official batching)."""
    order = sorted(range(len(examples)), key=lambda i: examples[i].image.size)
    batches, current, largest = [], [], 0
    for index in order:
        area = examples[index].image.size
        if current and (len(current) == max_images or max(largest, area) * (len(current) + 1) > max_pixels):
            batches.append(current)
            current, largest = [], 0
        current.append(index)
        largest = max(largest, area)
    if current:
        batches.append(current)
    return batches


def padded_size(images: list[np.ndarray]) -> tuple[int, int]:
    """(H, W) of a batch of these images: the largest height and width, rounded up to 16."""
    return (-(-max(i.shape[0] for i in images) // STRIDE) * STRIDE,
            -(-max(i.shape[1] for i in images) // STRIDE) * STRIDE)


def padding_cost(examples: list[Example], batches: list[list[int]]) -> dict[str, float]:
    """What padding adds to the work, per image: real and padded pixels (sizes rounded up to 16
    as collate does) and real and padded decoder steps (label + 1), with the mean batch size."""
    padded_pixels = padded_steps = 0
    for indices in batches:
        height, width = padded_size([examples[i].image for i in indices])
        padded_pixels += height * width * len(indices)
        padded_steps += (max(len(examples[i].token_ids) for i in indices) + 1) * len(indices)
    count = sum(len(indices) for indices in batches)
    real_pixels = sum(examples[i].image.size for indices in batches for i in indices)
    real_steps = sum(len(examples[i].token_ids) + 1 for indices in batches for i in indices)
    return {"images_per_batch": count / len(batches), "pixels": real_pixels / count,
            "padded_pixels": padded_pixels / count, "steps": real_steps / count, "padded_steps": padded_steps / count}


def pad_images(images: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack uint8 images into (B,1,H,W) float [0,1] and a (B,H,W) mask, sizes rounded up to 16."""
    height, width = padded_size(images)
    batch = torch.zeros(len(images), 1, height, width)
    mask = torch.zeros(len(images), height, width)
    for k, image in enumerate(images):
        h, w = image.shape
        batch[k, 0, :h, :w] = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
        mask[k, :h, :w] = 1
    return batch, mask


def decoder_sequences(token_ids: list[list[int]], vocab: Vocabulary) -> tuple[dict, dict, torch.Tensor, torch.Tensor]:
    """Inputs and targets of both directions, padded to T = max length + 1.

    L2R: input <sos> y1..yn, target y1..yn <eos>.  R2L: input <eos> yn..y1, target yn..y1 <sos>.
    """
    lengths = torch.tensor([len(ids) for ids in token_ids])
    steps = int(lengths.max()) + 1
    batch = len(token_ids)
    inputs = {d: torch.full((batch, steps), vocab.eos_id, dtype=torch.long) for d in ("l2r", "r2l")}
    targets = {d: torch.full((batch, steps), vocab.eos_id, dtype=torch.long) for d in ("l2r", "r2l")}
    target_mask = torch.zeros(batch, steps)
    for b, ids in enumerate(token_ids):
        n = len(ids)
        forward, backward = torch.tensor(ids, dtype=torch.long), torch.tensor(ids[::-1], dtype=torch.long)
        inputs["l2r"][b, : n + 1] = torch.cat([torch.tensor([vocab.sos_id]), forward])
        targets["l2r"][b, : n + 1] = torch.cat([forward, torch.tensor([vocab.eos_id])])
        inputs["r2l"][b, : n + 1] = torch.cat([torch.tensor([vocab.eos_id]), backward])
        targets["r2l"][b, : n + 1] = torch.cat([backward, torch.tensor([vocab.sos_id])])
        target_mask[b, : n + 1] = 1
    return inputs, targets, target_mask, lengths


def collate(examples: list[Example], vocab: Vocabulary) -> Batch:
    """Examples -> a padded Batch with sequences for both directions."""
    images, image_mask = pad_images([e.image for e in examples])
    inputs, targets, target_mask, lengths = decoder_sequences([e.token_ids for e in examples], vocab)
    return Batch([e.expression_id for e in examples], images, image_mask, inputs, targets, target_mask, lengths)
