"""Image preprocessing: any picture -> the training images' polarity, crop, margins, symbol size and stroke width."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from abm_lib.preprocessing import (ImageError, PreprocessSettings, preprocess_image, stroke_width,
                                   symbol_height)

from conftest import SAMPLE

TRAIN_IMAGES = sorted((SAMPLE / "crohme_offline" / "train").glob("*.png"))


@pytest.fixture(scope="module")
def standard() -> np.ndarray:
    """A standard training image: 0/255, white ink on black, 12/11 px margins."""
    return np.asarray(Image.open(TRAIN_IMAGES[0]))


def _ink_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) margins of the ink."""
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    return rows[0], image.shape[0] - 1 - rows[-1], cols[0], image.shape[1] - 1 - cols[-1]


def test_standard_images_pass_through_unchanged(standard):
    assert np.array_equal(preprocess_image(TRAIN_IMAGES[0]), standard)
    unchanged, ratios = 0, []
    for path in TRAIN_IMAGES:
        original, result = np.asarray(Image.open(path)), preprocess_image(path)
        unchanged += result.shape == original.shape and np.array_equal(result, original)
        ratios.append(result.shape[0] / original.shape[0])
    assert unchanged >= 0.9 * len(TRAIN_IMAGES)  # the rest have an unusual symbol-size measure
    assert 0.8 < np.median(ratios) < 1.25 and min(ratios) > 0.5 and max(ratios) < 2


def test_polarity_dtype_and_channels_do_not_matter(standard):
    expected = preprocess_image(standard)
    dark_on_light = 255 - standard
    variants = [
        dark_on_light,
        np.stack([dark_on_light] * 3, axis=-1),  # RGB
        np.dstack([np.stack([dark_on_light] * 3, axis=-1), np.full_like(standard, 255)]),  # opaque RGBA
        dark_on_light.astype(np.float32) / 255,
        standard.astype(bool),
        standard.astype(np.uint16) * 257,
        np.dstack([np.zeros((*standard.shape, 3), np.uint8), standard]),  # black strokes on transparent
    ]
    for variant in variants:
        assert np.array_equal(preprocess_image(variant), expected)


def test_crop_and_margins():
    canvas = np.zeros((300, 400), np.uint8)
    canvas[80:115, 100:103] = 255  # a "1", 35 px tall, 3 px wide
    canvas[96:99, 130:163] = 255  # a "-"
    canvas[5, 5] = 255  # a speck
    result = preprocess_image(canvas)
    assert result.dtype == np.uint8 and set(np.unique(result)) == {0, 255}
    assert _ink_box(result) == (12, 11, 12, 11)
    assert result.shape == (35 + 23, 63 + 23)  # in the training size range: not rescaled


def test_large_dark_ink_scan_is_brought_to_training_size(standard):
    """The standard image as a noisy 3x scan, dark ink on gray paper, thick strokes."""
    big = cv2.resize(standard, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
    noise = np.random.default_rng(0).normal(0, 8, big.shape)
    scan = np.clip(220 - 0.8 * big + noise, 0, 255).astype(np.uint8)
    result = preprocess_image(np.stack([scan] * 3, axis=-1))
    settings = PreprocessSettings()
    assert abs(symbol_height(result > 0) - settings.symbol_height_target) < 3
    assert settings.stroke_width_range[0] <= stroke_width(result > 0) <= settings.stroke_width_range[1]
    assert abs(result.shape[1] / standard.shape[1] - 1) < 0.15
    assert _ink_box(result) == (12, 11, 12, 11)


def test_small_thin_ink_is_enlarged_and_thickened():
    canvas = np.full((40, 60), 255, np.uint8)
    cv2.line(canvas, (10, 10), (10, 22), 0, 1)  # thin dark "1", 13 px tall
    cv2.line(canvas, (20, 10), (30, 22), 0, 1)
    result = preprocess_image(canvas)
    assert abs(symbol_height(result > 0) - PreprocessSettings().symbol_height_target) < 4
    assert PreprocessSettings().stroke_width_range[0] <= stroke_width(result > 0)


@pytest.mark.parametrize("blank", [np.zeros((50, 80)), np.full((50, 80, 3), 255, np.uint8),
                                   np.pad(np.ones((1, 1)), 20)])  # a lone pixel is a speck, not ink
def test_blank_images_are_refused(blank):
    with pytest.raises(ImageError, match="no ink found \\(the image is blank after thresholding\\)"):
        preprocess_image(blank)


def test_unreadable_files_are_named(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ImageError, match="broken.png: not a readable image"):
        preprocess_image(tmp_path / "broken.png")
    with pytest.raises(FileNotFoundError, match="missing.png: no such image file"):
        preprocess_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="expected an HxW"):
        preprocess_image(np.zeros((2, 3, 4, 5)))


def test_files_and_arrays_agree(tmp_path, standard):
    Image.fromarray(255 - standard).convert("RGB").save(tmp_path / "photo.jpg", quality=90)
    from_jpeg = preprocess_image(tmp_path / "photo.jpg")
    assert abs(from_jpeg.shape[0] - standard.shape[0]) <= 2 and abs(from_jpeg.shape[1] - standard.shape[1]) <= 2


def test_settings_round_trip_as_a_dict():
    settings = PreprocessSettings(symbol_height_target=30.0)
    assert PreprocessSettings.from_dict(settings.to_dict()) == settings
    with pytest.raises(KeyError, match="unknown preprocessing"):
        PreprocessSettings.from_dict({"scale": 2})
