"""Shared test helpers: a tiny model configuration, the shared data location, single-threaded torch."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from abm_lib.decoder import DecoderConfig
from abm_lib.encoder import EncoderConfig
from abm_lib.model import ABMConfig

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SAMPLE = REPO / "data_prep" / "sample"


def tiny_config(**overrides) -> ABMConfig:
    """A model small enough for unit tests, with every component of the real one."""
    encoder = EncoderConfig(growth_rate=4, layers_per_block=2)
    decoder = DecoderConfig(embedding_dim=16, hidden_dim=16, attention_dim=16, coverage_channels=8, readout_dim=16)
    return ABMConfig(encoder=encoder, decoder=decoder, **overrides)


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory) -> Path:
    """The repository sample built into prepared splits (train and valid), once per session."""
    from data_prep.build import BuildSettings, build

    out = tmp_path_factory.mktemp("prepared")
    build(BuildSettings(SAMPLE / "crohme", SAMPLE / "crohme_offline", out, splits=("train", "valid"), workers=1))
    return out


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests run single-threaded: faster and steadier on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
