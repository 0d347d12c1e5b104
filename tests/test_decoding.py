"""Greedy and batched beam search against a one-image-at-a-time reference of the official algorithm."""
from __future__ import annotations

import pytest
import torch

from abm_lib.decoder import DecoderConfig, DecoderState
from abm_lib.decoding import (EOS_ID, SOS_ID, DecodingOptions, Hypothesis, beam_search, beam_search_nbest,
                              greedy_search)
from abm_lib.encoder import EncoderConfig
from abm_lib.model import ABM, ABMConfig

SIZES = [(32, 64), (48, 96), (64, 80)]  # feature grids 2x4, 3x6, 4x5
MAX_LENGTH = 15
Scored = tuple[list[int], float]  # token ids and score of a reference hypothesis


def small_model(eos_bias: float = 0.5) -> ABM:
    """A tiny random ABM whose end token competes with the others, so beams finish at many steps.

    With these classifier scales (R2L is Xavier-initialised, hence smaller), width 10 and 15
    steps, images end with 6 to 10 finished hypotheses of 1 to 11 steps and some still live:
    shrinking beams, images that finish early and the max_length cut all happen.
    """
    torch.manual_seed(0)
    config = ABMConfig(encoder=EncoderConfig(growth_rate=4, layers_per_block=2),
                       decoder=DecoderConfig(embedding_dim=16, hidden_dim=16, attention_dim=16,
                                             coverage_channels=8, readout_dim=16))
    model = ABM(config).eval()
    with torch.no_grad():
        for direction, end_id, classifier_scale in (("l2r", EOS_ID, 0.25), ("r2l", SOS_ID, 2.0)):
            model.decoders[direction].classifier.weight.mul_(classifier_scale)
            model.decoders[direction].classifier.bias[end_id] = eos_bias
    return model


def random_images(sizes: list[tuple[int, int]], seed: int = 1) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand((1, h, w), generator=generator) for h, w in sizes]


def pad_batch(images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images at the top left of a zero batch (B,1,H,W) and the mask (B,H,W) of their pixels."""
    height = max(image.shape[1] for image in images)
    width = max(image.shape[2] for image in images)
    batch = torch.zeros((len(images), 1, height, width))
    mask = torch.zeros((len(images), height, width))
    for row, image in enumerate(images):
        batch[row, :, :image.shape[1], :image.shape[2]] = image
        mask[row, :image.shape[1], :image.shape[2]] = 1
    return batch, mask


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tensors here are tiny: a second thread only adds waiting, a lot of it on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model() -> ABM:
    return small_model()


@pytest.fixture(scope="module")
def images() -> list[torch.Tensor]:
    return random_images(SIZES)


@torch.no_grad()
def reference_beam_search(model: ABM, image: torch.Tensor, width: int, max_length: int,
                          direction: str = "l2r") -> tuple[list[Scored], list[Scored]]:
    """The official algorithm, one image, Python lists: (finished, still live) as (tokens, score) pairs."""
    start_id, end_id = (SOS_ID, EOS_ID) if direction == "l2r" else (EOS_ID, SOS_ID)
    decoder = model.decoders[direction]
    features, feature_mask = model.encode(image[None], torch.ones_like(image))
    memory, state = decoder.start(features, feature_mask)
    live = [([], 0.0, state, start_id)]  # tokens, score, decoder state, last token
    finished = []
    for _ in range(max_length):
        states = DecoderState(torch.cat([h[2].hidden for h in live]), torch.cat([h[2].coverage for h in live]))
        logits, new_states, _ = decoder.step(memory.select(torch.zeros(len(live), dtype=torch.long)), states,
                                             torch.tensor([h[3] for h in live]))
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        scores = (torch.tensor([h[1] for h in live])[:, None] + log_probs).tolist()  # float32 sums
        candidates = [(score, parent, token) for parent, row in enumerate(scores)
                      for token, score in enumerate(row)]
        candidates.sort(key=lambda candidate: -candidate[0])
        next_live = []
        for score, parent, token in candidates[:width - len(finished)]:
            if token == end_id:
                finished.append((live[parent][0], score))
            else:
                parent_state = new_states.select(torch.tensor([parent]))
                next_live.append((live[parent][0] + [token], score, parent_state, token))
        live = next_live
        if not live or len(finished) >= width:
            break
    return finished, [(h[0], h[1]) for h in live]


def reference_ranking(finished: list[Scored], live: list[Scored], length_normalized: bool) -> list[Scored]:
    """The official choice order: finished by score / (tokens + end); live ones only if none finished."""
    def key(entry, ended):
        return entry[1] / (len(entry[0]) + ended) if length_normalized else entry[1]
    if finished:
        return sorted(finished, key=lambda entry: -key(entry, 1))
    return sorted(live, key=lambda entry: -key(entry, 0))


def assert_same_hypotheses(found, expected) -> None:
    assert [h.token_ids for h in found] == [tokens for tokens, _ in expected]
    assert [h.score for h in found] == pytest.approx([score for _, score in expected], abs=1e-5)


@pytest.mark.parametrize("width, length_normalized, direction",
                         [(10, True, "l2r"), (3, True, "l2r"), (10, False, "l2r"), (10, True, "r2l"), (4, True, "r2l")])
def test_batched_beam_search_equals_one_image_reference(model, images, width, length_normalized, direction):
    options = DecodingOptions(beam_width=width, max_length=MAX_LENGTH, length_normalized=length_normalized,
                              direction=direction, return_attention=False)
    ranked = beam_search_nbest(model, *pad_batch(images), options)
    best = beam_search(model, *pad_batch(images), options)
    for image, found, chosen in zip(images, ranked, best):
        finished, live = reference_beam_search(model, image, width, MAX_LENGTH, direction)
        expected = reference_ranking(finished, live, length_normalized)
        assert_same_hypotheses(found, expected)
        assert_same_hypotheses([chosen], expected[:1])
        assert chosen.finished == bool(finished)


def test_fixture_exercises_shrinking_beams_and_the_length_cut(model, images):
    """Guards the test model: finished hypotheses of several lengths, and live ones at the cut."""
    finished, live = reference_beam_search(model, images[0], 10, MAX_LENGTH)
    assert len({len(tokens) for tokens, _ in finished}) >= 3
    assert 0 < len(live) < 10
    finished, live = reference_beam_search(model, images[0], 10, MAX_LENGTH, "r2l")
    assert len(finished) == 10 and not live  # stopped early: the whole beam finished


@pytest.mark.parametrize("direction", ["l2r", "r2l"])
def test_beam_width_one_equals_greedy(model, images, direction):
    options = DecodingOptions(beam_width=1, max_length=MAX_LENGTH, direction=direction, return_attention=False)
    greedy = greedy_search(model, *pad_batch(images), options)
    beam = beam_search(model, *pad_batch(images), options)
    assert [h.token_ids for h in beam] == [h.token_ids for h in greedy]
    assert [h.finished for h in beam] == [h.finished for h in greedy]
    assert [h.score for h in beam] == pytest.approx([h.score for h in greedy], abs=1e-5)


@pytest.mark.parametrize("search", [greedy_search, beam_search])
def test_padding_in_a_batch_changes_nothing(model, images, search):
    options = DecodingOptions(beam_width=5, max_length=MAX_LENGTH)
    alone = search(model, *pad_batch(images[:1]), options)[0]
    in_batch = search(model, *pad_batch(images), options)[0]  # padded to 64x96 next to larger images
    assert in_batch.token_ids == alone.token_ids
    assert in_batch.score == pytest.approx(alone.score, abs=1e-5)
    assert in_batch.attention.shape == alone.attention.shape == (alone.length, 2, 4)
    torch.testing.assert_close(in_batch.attention, alone.attention, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("search", [greedy_search, beam_search])
def test_no_end_token_still_gives_one_hypothesis_per_image(images, search):
    model = small_model(eos_bias=-100.0)  # the end token is never chosen
    options = DecodingOptions(beam_width=4, max_length=6)
    results = search(model, *pad_batch(images), options)
    assert len(results) == len(images)
    for hypothesis in results:
        assert not hypothesis.finished
        assert len(hypothesis.token_ids) == hypothesis.length == 6
        assert hypothesis.attention.shape[0] == 6
        assert EOS_ID not in hypothesis.token_ids


@pytest.mark.parametrize("search", [greedy_search, beam_search])
def test_immediate_end_token_gives_an_empty_finished_hypothesis(images, search):
    model = small_model(eos_bias=100.0)
    results = search(model, *pad_batch(images), DecodingOptions(beam_width=4, max_length=6))
    for hypothesis, (height, width) in zip(results, SIZES):
        assert hypothesis.finished and hypothesis.token_ids == []
        assert hypothesis.length == 1
        assert hypothesis.attention.shape == (1, height // 16, width // 16)
        assert hypothesis.normalized_score == pytest.approx(hypothesis.score)


@pytest.mark.parametrize("search", [greedy_search, beam_search])
def test_attention_maps_cover_each_image_and_sum_to_one(model, images, search):
    results = search(model, *pad_batch(images), DecodingOptions(beam_width=5, max_length=MAX_LENGTH))
    for hypothesis, (height, width) in zip(results, SIZES):
        assert hypothesis.attention.shape == (hypothesis.length, height // 16, width // 16)
        assert hypothesis.attention.dtype == torch.float32
        torch.testing.assert_close(hypothesis.attention.sum((1, 2)), torch.ones(hypothesis.length))
    options = DecodingOptions(beam_width=5, max_length=3, return_attention=False)
    no_maps = search(model, *pad_batch(images), options)
    assert all(h.attention is None for h in no_maps)


@torch.no_grad()
def test_greedy_attention_equals_the_maps_of_the_search_steps(model, images):
    """The teacher-forced maps attached after the search are the ones the search itself produced."""
    hypothesis = greedy_search(model, *pad_batch(images[:1]), DecodingOptions(max_length=MAX_LENGTH))[0]
    decoder = model.decoders["l2r"]
    memory, state = decoder.start(*model.encode(*pad_batch(images[:1])))
    previous, maps = torch.tensor([SOS_ID]), []
    for _ in range(hypothesis.length):
        logits, state, alpha = decoder.step(memory, state, previous)
        previous = logits.argmax(-1)
        maps.append(alpha[0])
    torch.testing.assert_close(hypothesis.attention, torch.stack(maps), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("direction", ["l2r", "r2l"])
@torch.no_grad()
def test_score_is_the_sum_of_token_log_probabilities_end_included(model, images, direction):
    start_id, end_id = (SOS_ID, EOS_ID) if direction == "l2r" else (EOS_ID, SOS_ID)
    options = DecodingOptions(beam_width=5, max_length=MAX_LENGTH, direction=direction, return_attention=False)
    for hypothesis, image in zip(beam_search(model, *pad_batch(images), options), images):
        targets = hypothesis.token_ids + ([end_id] if hypothesis.finished else [])
        inputs = torch.tensor([[start_id] + targets[:-1]])
        features, feature_mask = model.encode(*pad_batch([image]))
        logits, _ = model.decoders[direction](features, feature_mask, inputs)
        log_probs = torch.log_softmax(logits.float(), -1)[0, torch.arange(len(targets)), targets]
        assert hypothesis.score == pytest.approx(log_probs.sum().item(), abs=1e-4)
        assert hypothesis.normalized_score == pytest.approx(hypothesis.score / len(targets))


def test_beam_search_runs_under_bfloat16_autocast(model, images):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        results = beam_search(model, *pad_batch(images), DecodingOptions(beam_width=3, max_length=5))
    for hypothesis in results:
        assert torch.isfinite(torch.tensor(hypothesis.score))
        assert hypothesis.attention.dtype == torch.float32


def test_reading_order_reverses_r2l_only():
    hypothesis = Hypothesis([3, 4, 5], score=-1.0, normalized_score=-0.25, finished=True)
    assert hypothesis.reading_order("l2r") == [3, 4, 5]
    assert hypothesis.reading_order("r2l") == [5, 4, 3]


def test_default_options_are_the_official_inference_settings():
    options = DecodingOptions()
    settings = (options.beam_width, options.max_length, options.length_normalized, options.direction)
    assert settings == (10, 200, True, "l2r")


@pytest.mark.parametrize("kwargs", [{"beam_width": 0}, {"max_length": 0}, {"direction": "up"}])
def test_invalid_options_are_rejected(kwargs):
    with pytest.raises(ValueError):
        DecodingOptions(**kwargs)
