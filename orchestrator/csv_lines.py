"""The data lines of a CSV file being imported, each with its line number: a line the CSV reader
cannot make sense of is reported with its number instead of ending the import.

Files are opened with ``errors="surrogateescape"``, so bytes that are not UTF-8 arrive as lone
surrogates: ``undecodable`` finds them, for the importer to reject that line alone.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any


class MalformedLine(str):
    """Why a line could not be read (``malformed CSV: ...``)."""


def data_lines(reader: Any) -> Iterator[tuple[int, list[str] | MalformedLine]]:
    """(the line a record starts on, its fields or why it cannot be read) after the header; ``reader``:
    a ``csv.reader`` (``strict=True``, so an unclosed quote is an error, not the rest of the file)."""
    last_line = reader.line_num
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield last_line + 1, MalformedLine(f"malformed CSV: {exc}")
            last_line = reader.line_num
            continue
        line, last_line = last_line + 1, reader.line_num
        yield line, fields


def undecodable(text: str) -> bool:
    """Whether the text holds bytes that were not UTF-8."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
