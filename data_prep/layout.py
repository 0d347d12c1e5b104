"""Where things are in the CROHME data folders, and a clear one-line error when they are not.

Two inputs, laid out as in the shared data (and in the repository sample):
- the InkML folder (``--crohme``): ``TrainINKML/<source>/``, ``TestINKMLGT/`` (CROHME 2013
  test, our validation set), ``TestEM2014GT/``, ``TEST2016_INKML_GT/``, ``TEST2019_INKML_GT/``;
- the offline folder (``--offline``): ``train/``, ``2014/``, ``2016/`` (PNG images named
  ``<id>_0.png`` plus captions) and ``2019/`` (captions only). Caption files hold one
  ``id<TAB>tokens`` line per expression: ``caption.txt`` (v1) and ``caption_v2.txt`` (v2).
"""
from __future__ import annotations

from pathlib import Path

# The InkML folder of each collection, relative to --crohme.
INKML_FOLDERS = {
    "train": "TrainINKML",
    "2013": "TestINKMLGT",
    "2014": "TestEM2014GT",
    "2016": "TEST2016_INKML_GT",
    "2019": "TEST2019_INKML_GT",
}
# The offline folders (relative to --offline), and which of them hold images.
OFFLINE_FOLDERS = ("train", "2014", "2016", "2019")
IMAGE_FOLDERS = ("train", "2014", "2016")
CAPTION_FILES = {"v1": "caption.txt", "v2": "caption_v2.txt"}
IMAGE_SUFFIX = "_0.png"


class LayoutError(ValueError):
    """An input folder that is missing or does not look like what was asked for."""


def _missing(option: str, path: Path, expected: list[str], missing: list[str]) -> LayoutError:
    found = "no such folder" if not path.is_dir() else f"missing {', '.join(missing)}"
    return LayoutError(f"{option} {path}: expected a folder containing {', '.join(expected)} ({found})")


def check_crohme_dir(path: Path | str, option: str = "--crohme") -> Path:
    """Return ``path`` if it holds the InkML folders, else raise LayoutError in one line."""
    path = Path(path)
    missing = [f"{name}/" for name in INKML_FOLDERS.values() if not (path / name).is_dir()]
    if missing:
        raise _missing(option, path, [f"{name}/" for name in INKML_FOLDERS.values()], missing)
    return path


def check_offline_dir(path: Path | str, option: str = "--offline") -> Path:
    """Return ``path`` if it holds the offline image/caption folders, else raise LayoutError."""
    path = Path(path)
    expected = [f"{name}/{CAPTION_FILES['v1']}" for name in OFFLINE_FOLDERS]
    missing = [name for name in expected if not (path / name).is_file()]
    if missing:
        raise _missing(option, path, expected, missing)
    return path


def inkml_files(crohme_dir: Path, collection: str) -> list[Path]:
    """All InkML files of a collection (``train``, ``2013``, ...), sorted, subfolders included."""
    return sorted((Path(crohme_dir) / INKML_FOLDERS[collection]).rglob("*.inkml"))


def read_captions(path: Path | str) -> dict[str, list[str]]:
    """Read an ``id<TAB>tokens`` caption file into id -> token list (file order kept)."""
    captions: dict[str, list[str]] = {}
    for line_number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        expression_id, separator, tokens = line.partition("\t")
        if not separator:
            raise ValueError(f"{path}:{line_number}: expected 'id<TAB>tokens'")
        captions[expression_id.strip()] = tokens.split()
    return captions


def read_caption_sets(folder: Path | str) -> dict[str, dict[str, list[str]]]:
    """The caption files present in an offline folder: label set (v1, v2) -> id -> tokens."""
    folder = Path(folder)
    return {
        label_set: read_captions(folder / name)
        for label_set, name in CAPTION_FILES.items()
        if (folder / name).is_file()
    }
