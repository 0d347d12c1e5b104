"""Loading the standard offline images: polarity check, pairing with captions, label checks."""
import numpy as np
import pytest
from PIL import Image

from data_prep.offline import OfflineImageError, check_polarity, load_image, load_offline_split


def _write_folder(folder, images: dict, captions_v1: dict, captions_v2: dict | None = None):
    folder.mkdir(parents=True)
    for expression_id, pixels in images.items():
        Image.fromarray(pixels).save(folder / f"{expression_id}_0.png")
    (folder / "caption.txt").write_text("".join(f"{i}\t{t}\n" for i, t in captions_v1.items()))
    if captions_v2 is not None:
        (folder / "caption_v2.txt").write_text("".join(f"{i}\t{t}\n" for i, t in captions_v2.items()))


def _ink(height=20, width=30, inverted=False):
    pixels = np.zeros((height, width), np.uint8)
    pixels[8:12, 5:25] = 255
    return 255 - pixels if inverted else pixels


def test_bright_ink_on_black_passes_and_the_inverse_is_refused():
    check_polarity(_ink())
    with pytest.raises(OfflineImageError, match="not bright ink on a dark background"):
        check_polarity(_ink(inverted=True))
    with pytest.raises(OfflineImageError, match="blank"):
        check_polarity(np.zeros((5, 5), np.uint8))


def test_load_image_reads_grey_pixels_and_refuses_non_images(tmp_path):
    Image.fromarray(_ink()).convert("RGB").save(tmp_path / "rgb.png")
    pixels = load_image(tmp_path / "rgb.png")
    assert pixels.dtype == np.uint8 and pixels.shape == (20, 30)
    (tmp_path / "text.png").write_text("not a png")
    with pytest.raises(OfflineImageError, match="cannot read image"):
        load_image(tmp_path / "text.png")


def test_a_folder_loads_with_v1_and_v2_and_lists_every_problem(tmp_path):
    _write_folder(
        tmp_path / "2014",
        images={"good": _ink(), "dark_on_white": _ink(inverted=True), "bad_v2": _ink(), "orphan": _ink()},
        captions_v1={"good": "x ^ { 2 }", "dark_on_white": "x", "bad_v2": "2 \\pi", "no_image": "y"},
        captions_v2={"good": "x ^ { 2 }", "dark_on_white": "x", "bad_v2": "2 \\Pi", "no_image": "y"},
    )
    samples, skipped = load_offline_split(tmp_path, "2014")
    assert [s.expression_id for s in samples] == ["good"]
    assert samples[0].labels == {"v1": ["x", "^", "{", "2", "}"], "v2": ["x", "^", "{", "2", "}"]}
    reasons = {s["file"].split("/")[-1]: s["reason"] for s in skipped}
    assert reasons["no_image_0.png"] == "no image for this caption"
    assert reasons["orphan_0.png"] == "image without a v1 caption"
    assert "not bright ink" in reasons["dark_on_white_0.png"]
    assert reasons["bad_v2_0.png"] == "v2 caption: token(s) outside the vocabulary: \\Pi"
