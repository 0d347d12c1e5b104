"""abm_lib: ABM (AAAI 2022) for handwritten mathematical expression recognition.

The public API is imported on first use, so `import abm_lib.vocab` (used by data_prep)
does not pull in torch and OpenCV.
"""
from __future__ import annotations

import importlib

_PUBLIC = {
    "ABM": ".model", "ABMConfig": ".model",
    "DecodingOptions": ".decoding", "beam_search": ".decoding", "greedy_search": ".decoding",
    "load_pretrained": ".pretrained", "recognize": ".recognizer",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'abm_lib' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name], __name__), name)
