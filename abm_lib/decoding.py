"""Decoding: greedy search and a beam search batched over images and beams, on the model's device.

Beam search keeps the official ABM semantics (one image at a time in the official test.py):
- a hypothesis is scored by the sum of the log-probabilities of its tokens, end token
  included (the official code minimises the same sum with the sign flipped);
- at every step each image ranks all one-token extensions of its live hypotheses and keeps
  the best (beam_width - finished) of them: a hypothesis that emits the end token leaves the
  beam for the image's list of finished ones, so the live width shrinks, and the image is
  done when beam_width hypotheses have finished (or none is live);
- the answer is the finished hypothesis with the best score / length, where length counts
  the tokens including the end token, as the official `len(sample)` does; hypotheses still
  live after `max_length` steps are not candidates (official test.py runs 1000 steps).
Departures, each documented where it happens: an image with no finished hypothesis after
`max_length` steps returns its best unfinished one instead of nothing (the official test.py
skips such an image and shifts every later id), and attention maps are recomputed for the
chosen hypotheses by one teacher-forced pass instead of being carried through the search.

Batching keeps the tensors rectangular, (images, beam_width): the slots a shrinking beam no
longer uses hold a score of -inf, so they never win a top-k, and images that are done are
dropped from the batch. The result equals the one-image-at-a-time algorithm (tests check it).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .decoder import AttentionGRUDecoder
from .model import ABM, DIRECTIONS

logger = logging.getLogger(__name__)

SOS_ID, EOS_ID = 0, 1  # the dictionary contract: <sos> = 0, <eos> = 1
START_END_IDS = {"l2r": (SOS_ID, EOS_ID), "r2l": (EOS_ID, SOS_ID)}  # R2L reads <eos> y_n .. y_1 <sos>


@dataclass(frozen=True)
class DecodingOptions:
    """How to decode; the defaults are the official inference settings (L2R, width 10)."""

    beam_width: int = 10
    max_length: int = 200  # decoding steps, the end token's step included
    length_normalized: bool = True  # choose among finished hypotheses by score / length
    direction: str = "l2r"
    return_attention: bool = True

    def __post_init__(self) -> None:
        if self.beam_width < 1 or self.max_length < 1:
            raise ValueError(f"beam_width and max_length must be >= 1, got {self.beam_width}, {self.max_length}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")


@dataclass
class Hypothesis:
    """One decoded sequence, in decoding order (reversed for R2L; see `reading_order`)."""

    token_ids: list[int]  # without the start and end tokens
    score: float  # sum of log-probabilities, the end token's included when finished
    normalized_score: float  # the value the choice was made on: score / length, or score
    finished: bool  # False if max_length was reached before the end token
    attention: torch.Tensor | None = None  # (length, h, w) over the image's real feature cells

    @property
    def length(self) -> int:
        """Decoding steps: the tokens plus the end token if there is one."""
        return len(self.token_ids) + int(self.finished)

    def reading_order(self, direction: str) -> list[int]:
        """Token ids left to right, whichever direction produced them."""
        return list(reversed(self.token_ids)) if direction == "r2l" else list(self.token_ids)


def _make_hypothesis(token_ids: list[int], score: float, finished: bool, options: DecodingOptions) -> Hypothesis:
    length = len(token_ids) + int(finished)
    normalized = score / length if options.length_normalized and length > 0 else score
    return Hypothesis(token_ids, score, normalized, finished)


def _encode(model: ABM, images: torch.Tensor, image_mask: torch.Tensor,
            options: DecodingOptions) -> tuple[AttentionGRUDecoder, torch.Tensor, torch.Tensor]:
    """The decoder of the chosen direction and the encoded batch."""
    if options.direction not in model.decoders:
        raise ValueError(f"the model has no {options.direction!r} decoder")
    if model.training:
        logger.warning("decoding a model in training mode: dropout is active; call model.eval() first")
    features, feature_mask = model.encode(images, image_mask)
    return model.decoders[options.direction], features, feature_mask


@torch.inference_mode()
def greedy_search(model: ABM, images: torch.Tensor, image_mask: torch.Tensor,
                  options: DecodingOptions = DecodingOptions()) -> list[Hypothesis]:
    """The most probable token at every step, for a batch; one Hypothesis per image."""
    decoder, features, feature_mask = _encode(model, images, image_mask, options)
    start_id, end_id = START_END_IDS[options.direction]
    memory, state = decoder.start(features, feature_mask)
    device = features.device
    rows_left = torch.arange(features.shape[0], device=device)  # image index of every row
    previous = torch.full_like(rows_left, start_id)
    scores = torch.zeros(len(rows_left), device=device)
    tokens = torch.empty((len(rows_left), 0), dtype=torch.long, device=device)
    results: list[Hypothesis | None] = [None] * features.shape[0]
    for _ in range(options.max_length):
        logits, state, _ = decoder.step(memory, state, previous)
        step_scores, previous = torch.log_softmax(logits.float(), dim=-1).max(dim=-1)
        scores = scores + step_scores
        tokens = torch.cat([tokens, previous[:, None]], dim=1)
        ended = previous == end_id
        if ended.any():
            for row in ended.nonzero().flatten().tolist():
                hypothesis = _make_hypothesis(tokens[row, :-1].tolist(), scores[row].item(), True, options)
                results[int(rows_left[row])] = hypothesis
            keep = (~ended).nonzero().flatten()
            memory, state = memory.select(keep), state.select(keep)
            rows_left, previous, scores, tokens = rows_left[keep], previous[keep], scores[keep], tokens[keep]
            if len(keep) == 0:
                break
    for row, image in enumerate(rows_left.tolist()):
        results[image] = _make_hypothesis(tokens[row].tolist(), scores[row].item(), False, options)
    if options.return_attention:
        attach_attention(decoder, features, feature_mask, results, options)
    return results


@torch.inference_mode()
def beam_search(model: ABM, images: torch.Tensor, image_mask: torch.Tensor,
                options: DecodingOptions = DecodingOptions()) -> list[Hypothesis]:
    """Official ABM beam search (see the module docstring), batched; the best Hypothesis per image."""
    decoder, features, feature_mask = _encode(model, images, image_mask, options)
    results = [ranked[0] for ranked in _search_beams(decoder, features, feature_mask, options)]
    if options.return_attention:
        attach_attention(decoder, features, feature_mask, results, options)
    return results


@torch.inference_mode()
def beam_search_nbest(model: ABM, images: torch.Tensor, image_mask: torch.Tensor,
                      options: DecodingOptions = DecodingOptions()) -> list[list[Hypothesis]]:
    """Every finished hypothesis per image, best first (the live ones if none finished); no attention."""
    decoder, features, feature_mask = _encode(model, images, image_mask, options)
    return _search_beams(decoder, features, feature_mask, options)


def _search_beams(decoder: AttentionGRUDecoder, features: torch.Tensor, feature_mask: torch.Tensor,
                  options: DecodingOptions) -> list[list[Hypothesis]]:
    """The batched search loop; per image its ranked candidates (see `_rank`)."""
    start_id, end_id = START_END_IDS[options.direction]
    batch, width, device = features.shape[0], options.beam_width, features.device
    memory, state = decoder.start(features, feature_mask)
    beam_rows = torch.arange(batch, device=device).repeat_interleave(width)
    memory, state = memory.select(beam_rows), state.select(beam_rows)  # row i * width + j: beam j of image i

    images_left = torch.arange(batch, device=device)  # image index of every remaining beam group
    scores = torch.full((batch, width), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live hypothesis, the empty one, at the start
    finished_count = torch.zeros(batch, dtype=torch.long, device=device)
    tokens = torch.empty((batch, width, 0), dtype=torch.long, device=device)
    previous = torch.full((batch * width,), start_id, device=device)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    slot = torch.arange(width, device=device)

    for _ in range(options.max_length):
        logits, state, _ = decoder.step(memory, state, previous)
        log_probs = torch.log_softmax(logits.float(), dim=-1).view(len(images_left), width, -1)
        vocab_size = log_probs.shape[-1]
        candidates = (scores[:, :, None] + log_probs).flatten(1)  # (images, width * vocab)
        top_scores, top_index = candidates.topk(width, dim=1)  # best first
        parent, token = top_index // vocab_size, top_index % vocab_size
        # The official beam ranks only (width - finished) candidates per image.
        taken = (slot[None, :] < (width - finished_count)[:, None]) & top_scores.isfinite()
        tokens = torch.cat([tokens.gather(1, parent[:, :, None].expand_as(tokens)), token[:, :, None]], dim=2)
        ended = taken & (token == end_id)
        if ended.any():
            _collect_finished(finished, images_left, ended, tokens, top_scores, options)
            finished_count = finished_count + ended.sum(dim=1)
        scores = top_scores.masked_fill(~taken | ended, float("-inf"))

        state_rows = parent + width * torch.arange(len(images_left), device=device)[:, None]
        keep = scores.isfinite().any(dim=1).nonzero().flatten()  # images with a live hypothesis
        if len(keep) < len(images_left):
            memory = memory.select((keep[:, None] * width + slot).flatten())
            state_rows, token = state_rows[keep], token[keep]
            images_left, scores, finished_count, tokens = (images_left[keep], scores[keep],
                                                           finished_count[keep], tokens[keep])
        state = state.select(state_rows.flatten())
        previous = token.flatten()
        if len(images_left) == 0:
            break
    return _rank(finished, images_left, scores, tokens, options)


def _collect_finished(finished: list[list[Hypothesis]], images_left: torch.Tensor, ended: torch.Tensor,
                      tokens: torch.Tensor, scores: torch.Tensor, options: DecodingOptions) -> None:
    """Move the hypotheses that just emitted the end token to their image's finished list, best first."""
    image_of_group = images_left.tolist()
    for group, beam in ended.nonzero().tolist():  # row-major: per image, in rank order
        hypothesis = _make_hypothesis(tokens[group, beam, :-1].tolist(), scores[group, beam].item(), True, options)
        finished[image_of_group[group]].append(hypothesis)


def _rank(finished: list[list[Hypothesis]], images_left: torch.Tensor, scores: torch.Tensor,
          tokens: torch.Tensor, options: DecodingOptions) -> list[list[Hypothesis]]:
    """Per image its finished hypotheses, best first; with none, its live ones (never nothing)."""
    live_group = {image: group for group, image in enumerate(images_left.tolist())}
    ranked = []
    for image, candidates in enumerate(finished):
        if not candidates:  # max_length reached before any end token: the official code outputs nothing
            group = live_group[image]
            live_beams = scores[group].isfinite().nonzero().flatten().tolist()
            candidates = [_make_hypothesis(tokens[group, beam].tolist(), scores[group, beam].item(), False, options)
                          for beam in live_beams]
        # A stable sort: among equal scores the earliest found wins, as the official argmin.
        ranked.append(sorted(candidates, key=lambda h: -h.normalized_score))
    return ranked


def attach_attention(decoder: AttentionGRUDecoder, features: torch.Tensor, feature_mask: torch.Tensor,
                     hypotheses: list[Hypothesis], options: DecodingOptions) -> None:
    """Set each hypothesis' attention maps by teacher-forcing its tokens through the decoder.

    Recomputing them for the B chosen sequences costs about 1/beam_width of the search and
    spares the search a per-step history. Maps are cropped to the real feature cells
    (images sit at the top left of the padded batch).
    """
    start_id, _ = START_END_IDS[options.direction]
    steps = max(h.length for h in hypotheses)
    input_ids = torch.full((len(hypotheses), steps), start_id, dtype=torch.long, device=features.device)
    for row, hypothesis in enumerate(hypotheses):
        inputs = ([start_id] + hypothesis.token_ids)[:hypothesis.length]  # step t reads token t-1
        input_ids[row, :len(inputs)] = torch.tensor(inputs, dtype=torch.long)
    _, alphas = decoder(features, feature_mask, input_ids)  # (B, steps, H, W)
    for row, hypothesis in enumerate(hypotheses):
        height = int(feature_mask[row].any(dim=1).sum())
        width = int(feature_mask[row].any(dim=0).sum())
        hypothesis.attention = alphas[row, :hypothesis.length, :height, :width].float()
