"""recognize(): preprocessing + beam search + vocabulary in one call, with the model's own settings."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from abm_lib import pretrained, recognize, recognizer
from abm_lib.checkpoint import CheckpointError
from abm_lib.data import pad_images
from abm_lib.decoding import DecodingOptions, beam_search
from abm_lib.model import ABM
from abm_lib.preprocessing import ImageError, PreprocessSettings, preprocess_image
from abm_lib.vocab import Vocabulary, default_vocabulary

from conftest import SAMPLE, tiny_config

IMAGE = sorted((SAMPLE / "crohme_offline" / "train").glob("*.png"))[0]
QUICK = DecodingOptions(beam_width=3, max_length=6)


@pytest.fixture(scope="module")
def tiny_model() -> ABM:
    torch.manual_seed(0)
    return ABM(tiny_config()).eval()


def test_recognize_returns_tokens_of_the_vocabulary(tiny_model):
    text = recognize(IMAGE, model=tiny_model, options=QUICK)
    assert isinstance(text, str)
    tokens = text.split()
    assert len(tokens) <= QUICK.max_length and all(t in default_vocabulary() for t in tokens)


def test_recognize_is_preprocessing_then_beam_search(tiny_model):
    image = 255 - np.asarray(Image.open(IMAGE))  # dark ink: recognize must invert it
    images, mask = pad_images([preprocess_image(image)])
    expected = beam_search(tiny_model, images, mask, dataclasses.replace(QUICK, return_attention=False))[0]
    vocab = default_vocabulary()
    assert recognize(image, model=tiny_model, options=QUICK, precision="fp32") == " ".join(
        vocab.tokens[i] for i in expected.token_ids)


def test_recognize_reads_the_models_vocabulary_and_preprocessing(tiny_model, monkeypatch):
    model = ABM(tiny_config()).eval()
    model.load_state_dict(tiny_model.state_dict())
    model.vocab = Vocabulary(("sos", "eos") + tuple(f"t{i}" for i in range(111)))
    model.preprocessing = PreprocessSettings(margin_before=20)
    seen = []
    monkeypatch.setattr(recognizer, "preprocess_image", lambda image, settings: seen.append(settings)
                        or preprocess_image(image, settings))
    text = recognize(IMAGE, model=model, options=QUICK)
    assert seen == [model.preprocessing]
    assert all(t.startswith("t") for t in text.split())


def test_recognize_in_r2l_reads_left_to_right(tiny_model):
    options = dataclasses.replace(QUICK, direction="r2l")
    images, mask = pad_images([preprocess_image(IMAGE)])
    hypothesis = beam_search(tiny_model, images, mask, dataclasses.replace(options, return_attention=False))[0]
    vocab = default_vocabulary()
    assert recognize(IMAGE, model=tiny_model, options=options, precision="fp32") == " ".join(
        vocab.tokens[i] for i in reversed(hypothesis.token_ids))


def test_errors_reach_the_caller(tiny_model, tmp_path, monkeypatch):
    with pytest.raises(ImageError, match="no ink found"):
        recognize(np.zeros((40, 40)), model=tiny_model)
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path)
    recognizer._default_model.cache_clear()
    with pytest.raises(CheckpointError, match="no shipped weights yet"):
        recognize(IMAGE)
    recognizer._default_model.cache_clear()
