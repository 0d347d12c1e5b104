"""Read CROHME InkML files: pen traces, expression id and the raw LaTeX truth."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_NS = "{http://www.w3.org/2003/InkML}"


class InkMLError(ValueError):
    """A file that cannot be used: names the file and the problem."""

    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


@dataclass(frozen=True)
class InkExpression:
    """One handwritten expression: its id (the file stem), strokes and raw LaTeX truth."""

    expression_id: str
    traces: list[np.ndarray]  # each (n_points, 2) float64, X and Y
    truth: str
    source: str  # sub-collection (HAMEX, KAIST, ...) or the test-set folder name


def _local(tag: str) -> str:
    return tag[len(_NS):] if tag.startswith(_NS) else tag


def parse_trace(text: str) -> np.ndarray:
    """Parse 'x y [t], x y [t], ...' into an (n, 2) array of X, Y (extra channels dropped)."""
    points = []
    for point in text.replace("\n", " ").split(","):
        values = point.split()
        if len(values) < 2:
            continue
        points.append((float(values[0]), float(values[1])))
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)


def _parse_xml(path: Path) -> ET.Element:
    """Parse the XML; a stray non-UTF-8 byte (seen in MfrDB0104's MathML) is replaced, not fatal."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InkMLError(path, f"cannot read ({error.strerror})") from None
    if not data.strip():
        raise InkMLError(path, "empty file")
    try:
        return ET.fromstring(data)
    except ET.ParseError:
        pass
    try:
        return ET.fromstring(data.decode("utf-8", errors="replace"))
    except ET.ParseError as error:
        raise InkMLError(path, f"broken XML ({error})") from None


def read_inkml(path: Path | str, source: str | None = None) -> InkExpression:
    """Read one InkML file; raise InkMLError for broken XML, no truth, or no ink."""
    path = Path(path)
    root = _parse_xml(path)

    truth = None
    traces = []
    for element in root:
        tag = _local(element.tag)
        if tag == "annotation" and element.get("type") == "truth" and truth is None:
            truth = (element.text or "").strip()
        elif tag == "trace":
            try:
                trace = parse_trace(element.text or "")
            except ValueError as error:
                raise InkMLError(path, f"trace {element.get('id')} is not numeric ({error})") from None
            if len(trace):
                traces.append(trace)
    if not truth:
        raise InkMLError(path, "no LaTeX truth annotation")
    if not traces:
        raise InkMLError(path, "no ink (every trace is empty)")
    return InkExpression(path.stem, traces, truth, source or path.parent.name)
