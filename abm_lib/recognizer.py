"""Recognise a handwritten expression in a picture: preprocessing, the model and beam search in one call.

    from abm_lib import recognize
    recognize("photo.jpg")            # '\\frac { a } { b }' with the shipped weights
    recognize(array, model=my_model)  # any ABM; one loaded by load_pretrained keeps its own
                                      # vocabulary and preprocessing settings
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from .data import pad_images
from .decoding import DecodingOptions, beam_search
from .model import ABM
from .preprocessing import PreprocessSettings, preprocess_image
from .pretrained import load_pretrained
from .runtime import resolve_runtime
from .vocab import default_vocabulary

__all__ = ["recognize", "preprocess_image"]


@functools.lru_cache(maxsize=1)
def _default_model() -> ABM:
    """The shipped weights, loaded once per process."""
    return load_pretrained()


def recognize(image_or_path: np.ndarray | Path | str, model: ABM | None = None,
              options: DecodingOptions = DecodingOptions(), precision: str = "auto") -> str:
    """LaTeX tokens joined by spaces for one image (path or array, any size or polarity).

    Runs on the model's device in the runtime's precision (bf16 on CPU, fp16 on CUDA by default);
    uses the model's `preprocessing` and `vocab` attributes when it has them.
    """
    model = _default_model() if model is None else model
    settings = getattr(model, "preprocessing", None) or PreprocessSettings()
    vocab = getattr(model, "vocab", None) or default_vocabulary()
    image = preprocess_image(image_or_path, settings)
    device = next(model.parameters()).device
    runtime = resolve_runtime(str(device), precision)
    images, image_mask = pad_images([image])
    with runtime.autocast():
        hypothesis = beam_search(model, images.to(device), image_mask.to(device),
                                 dataclasses.replace(options, return_attention=False))[0]
    token_ids = hypothesis.reading_order(options.direction)
    return " ".join(vocab.tokens[i] for i in token_ids)

