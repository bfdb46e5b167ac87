"""The segments of ``segments.yaml`` (plus the built-in ``all``), each filter checked on loading."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from orchestrator.segments.filters import SegmentError, compile_filter
from orchestrator.settings import get_settings

SEGMENT_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass
class Segment:
    name: str
    description: str
    filter: dict = field(default_factory=dict)


ALL = Segment("all", "Every customer", {})


def load_segments(path: Path | None = None) -> dict[str, Segment]:
    """The built-in ``all`` plus every segment in the file (default: settings' segments_path).

    Every filter is compiled once here, so a broken file fails when it is loaded.
    """
    segments = {ALL.name: ALL}
    source = Path(path) if path is not None else get_settings().segments_path
    if not source.exists():
        if path is not None:
            raise SegmentError(f"segments file not found: {source}")
        return segments
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SegmentError(f"{source}: not valid YAML: {exc}") from None
    return {ALL.name: ALL, **_parse_segments(text, source)}


@lru_cache(maxsize=16)
def _parse_segments(text: str, source: Path) -> dict[str, Segment]:
    # Keyed on the file's text, as the policy is: an edit takes effect at once, and every chunk
    # task finds its customers through a segment (parsing and compiling the file costs tens of ms).
    segments: dict[str, Segment] = {}
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SegmentError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise SegmentError(f"{source}: nested too deeply to read") from None
    entries = data.get("segments", {}) if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise SegmentError(f"{source}: expected a mapping 'segments: {{name: {{description, filter}}}}'")
    for name, spec in entries.items():
        if not isinstance(name, str) or not SEGMENT_NAME_RE.match(name):
            raise SegmentError(f"{source}: segment name {name!r} must use letters, digits, _ . -")
        if name == ALL.name:
            raise SegmentError(f"{source}: 'all' is built in and cannot be redefined")
        if not isinstance(spec, dict) or set(spec) - {"description", "filter"}:
            raise SegmentError(f"segment {name!r}: expected 'description' and 'filter' keys only")
        segment = Segment(name, str(spec.get("description") or ""), spec.get("filter") or {})
        try:
            compile_filter(segment.filter, segment=name)
        except SegmentError as exc:
            raise SegmentError(f"{source}: {exc}") from None
        segments[name] = segment
    return segments


def get_segment(name: str, path: Path | None = None) -> Segment:
    segments = load_segments(path)
    try:
        return segments[name]
    except KeyError:
        raise SegmentError(f"unknown segment {name!r} (known: {', '.join(sorted(segments))})") from None
