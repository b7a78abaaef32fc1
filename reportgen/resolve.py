r"""Turn citations into lines of files under an audit root, refusing any path that leads outside it.

Elided citations are resolved against the report's history, which is why `Resolver` is stateful and must see
the citations in report order: ``…suffix:N`` stands for the most recent cited path ending in ``suffix``
(or, if none, the single file under root whose path ends so), a bare ``:N`` and ``[L817]`` for the file cited
just before, ``[row N in CSV]``/``rows 2–5`` for the most recently cited ``.csv`` and ``JSON L4`` for the most
recently cited ``.json`` (or the only JSON file the report cites anywhere, given as ``report_paths``). A
citation's path is remembered even when the file turns out to be missing, so a following ``:N`` is reported
against the same (missing) file rather than an older one.

A report may cite artifact data only: a path ending in ``.md``, ``.html``, ``.build.json`` or
``.validation.json``, or lying under ``.llm-cache/``, resolves to an `Unresolved` marked ``forbidden``.

`SourceFile` also answers the questions the auditor asks of a whole file: which key a line holds (a JSON
``"key": scalar`` line, or the CSV columns of a row), and which lines hold a number or a quoted string (for the
"found on line N" hint). The whole-file answers are built lazily, once per file, so diagnosing any number of
failing citations costs about one read of the file.

Lines are split on ``\n`` only (``\r`` stripped): `str.splitlines` also splits on U+2028 and other
separators that JSON may carry raw inside strings, which would shift every later line number.
"""

from __future__ import annotations

import bisect
import csv
import json
import math
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from reportgen.bound import forbidden_reason
from reportgen.citations import Citation, CitationKind
from reportgen.numbers import NumberToken, matches, numbers_in_line

__all__ = ["NO_VALUE", "Resolver", "SourceFile", "Unresolved"]

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_ELLIPSIS = re.compile(r"\u2026|\.\.\.")
_JSON_PAIR = re.compile(r'^\s*(?P<key>"(?:[^"\\]|\\.)*")\s*:\s*(?P<value>.*?),?\s*$')
_CSV_FLOAT = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
NO_VALUE = object()  # a line holds no value for a key (a bracket, or a key holding an object or array)


@dataclass(frozen=True)
class Unresolved:
    """A citation that cannot be checked: the path as understood (if any) and why.

    ``forbidden`` marks a citation of a report or a record (not artifact data), which fails the audit as such.
    """

    path: str | None
    reason: str
    forbidden: bool = False


def _normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def _decode_json_strings(line: str) -> str:
    r"""Replace each JSON string literal by its value, so ``\u00e9`` and ``\"`` compare as ``é`` and ``"``."""

    def decode(match: re.Match[str]) -> str:
        try:
            return json.loads(match.group(0))
        except json.JSONDecodeError:
            return match.group(0)

    return _JSON_STRING.sub(decode, line)


@dataclass
class SourceFile:
    """A cited file's lines, with per-line numbers and searchable text computed on first use."""

    name: str
    lines: list[str]
    _numbers: dict[int, list[float]] = field(default_factory=dict, repr=False)
    _texts: dict[int, tuple[str, ...]] = field(default_factory=dict, repr=False)
    _keyed: dict[int, dict[str, tuple[str, object]]] = field(default_factory=dict, repr=False)
    _header: list[str] | None = field(default=None, repr=False)
    _number_index: tuple[list[float], list[int]] | None = field(default=None, repr=False)
    _joined: list[tuple[str, list[int]]] | None = field(default=None, repr=False)
    _key_lines: dict[str, list[int]] | None = field(default=None, repr=False)

    @property
    def line_count(self) -> int:
        """Number of lines in the file."""
        return len(self.lines)

    def line(self, number: int) -> str:
        """Return the text of 1-based line ``number``."""
        return self.lines[number - 1]

    def has_number(self, number: int, token: NumberToken) -> bool:
        """Whether a value on line ``number`` matches ``token`` by the rounding rule."""
        if number not in self._numbers:
            self._numbers[number] = numbers_in_line(self.line(number))
        return any(matches(token, value) for value in self._numbers[number])

    def has_text(self, number: int, quote: str) -> bool:
        """Whether line ``number`` contains ``quote``; each part of a quote split at ``…`` must appear."""
        parts = [_normalise(part) for part in _ELLIPSIS.split(quote) if part.strip()]
        return bool(parts) and any(all(part in text for part in parts) for text in self._readings(number))

    def _readings(self, number: int) -> tuple[str, ...]:
        if number not in self._texts:
            raw = self.line(number)
            # Three readings: as written, JSON strings decoded, and CSV's doubled quotes undone.
            variants = (raw, _decode_json_strings(raw), raw.replace('""', '"'))
            self._texts[number] = tuple(_normalise(variant) for variant in variants)
        return self._texts[number]

    def value_of(self, number: int, key: str) -> tuple[str, object] | None:
        """The value line ``number`` holds for ``key`` (case-insensitive), with the key as the file spells it.

        A JSON line ``"key": scalar`` holds one key; a CSV data row holds one value per header column (typed:
        ``True``/``False`` as booleans, an empty cell as None, numbers as floats). A key whose value is an
        object or array (the line opens a bracket) gives `NO_VALUE`. None when the line has no such key.
        """
        if number not in self._keyed:
            self._keyed[number] = self._read_keys(number)
        return self._keyed[number].get(key.lower())

    def _read_keys(self, number: int) -> dict[str, tuple[str, object]]:
        text = self.line(number)
        if (pair := _JSON_PAIR.match(text)) is not None:
            try:
                key, raw = json.loads(pair.group("key")), pair.group("value")
                value = NO_VALUE if raw.startswith(("[", "{")) else json.loads(raw)
            except json.JSONDecodeError:
                return {}
            return {str(key).lower(): (str(key), value)}
        if number == 1 or not self.name.lower().endswith((".csv", ".tsv")):
            return {}
        header = self._csv_header()
        cells = _csv_cells(text, "\t" if self.name.lower().endswith(".tsv") else ",")
        return {name.lower(): (name, _typed_cell(cell)) for name, cell in zip(header, cells, strict=False)}

    def key_lines(self, key: str) -> list[int] | None:
        """Lines where the file holds ``key`` (case-insensitive); None when the file has no such key at all.

        JSON: the ``"key": scalar`` lines, from one pass over the file. CSV: every data row, when ``key`` is a column.
        """
        if self.name.lower().endswith((".csv", ".tsv")):
            columns = {name.lower() for name in self._csv_header()}
            return list(range(2, self.line_count + 1)) if key.lower() in columns else None
        if self._key_lines is None:
            self._key_lines = {}
            for number, text in enumerate(self.lines, start=1):
                if (pair := _JSON_PAIR.match(text)) is not None and not pair.group("value").startswith(("[", "{")):
                    try:
                        name = str(json.loads(pair.group("key"))).lower()
                    except json.JSONDecodeError:
                        continue
                    self._key_lines.setdefault(name, []).append(number)
        return self._key_lines.get(key.lower())

    def _csv_header(self) -> list[str]:
        if self._header is None:
            delimiter = "\t" if self.name.lower().endswith(".tsv") else ","
            self._header = [cell.strip() for cell in _csv_cells(self.lines[0], delimiter)] if self.lines else []
        return self._header

    def lines_with_number(self, token: NumberToken) -> list[int]:
        """Every line holding a value that matches ``token``, from one sorted index of the file's numbers.

        A match lies within half a unit of the written last digit, so a lookup bisects that interval (with
        slack for binary rounding; a percentage also looks up the fraction) and confirms each candidate line
        with `has_number`. The index is built once per file, whatever the precision asked for.
        """
        values, lines = self._sorted_numbers()
        written = float(token.exact)
        half = 0.6 * 10.0 ** -max(min(token.decimals, 300), -300)
        centres = [(written, half)] + ([(written / 100, half / 100)] if token.is_percent else [])
        found: set[int] = set()
        for centre, width in centres:
            low = bisect.bisect_left(values, centre - width)
            high = bisect.bisect_right(values, centre + width)
            # Confirm only the values inside the interval, not every number of their lines.
            found.update(lines[at] for at in range(low, high) if lines[at] not in found and matches(token, values[at]))
        return sorted(found)

    def _sorted_numbers(self) -> tuple[list[float], list[int]]:
        if self._number_index is None:
            pairs = []
            for line in range(1, self.line_count + 1):
                if line not in self._numbers:
                    self._numbers[line] = numbers_in_line(self.line(line))
                pairs.extend((value, line) for value in self._numbers[line] if math.isfinite(value))
            pairs.sort()
            self._number_index = ([value for value, _ in pairs], [line for _, line in pairs])
        return self._number_index

    def lines_with_text(self, quote: str) -> list[int]:
        """Every line containing ``quote`` (as `has_text` reads it), by searching the whole file's text once."""
        parts = [_normalise(part) for part in _ELLIPSIS.split(quote) if part.strip()]
        found: set[int] = set()
        for text, starts in self._joined_texts() if parts else []:
            at = text.find(parts[0])
            while at != -1:
                line = bisect.bisect_right(starts, at)  # starts[line - 1] <= at: the 1-based line of the hit
                if self.has_text(line, quote):
                    found.add(line)
                at = text.find(parts[0], starts[line] if line < len(starts) else len(text))
        return sorted(found)

    def _joined_texts(self) -> list[tuple[str, list[int]]]:
        """Each of the three readings of `has_text` as one string, lines joined by newlines, with line starts."""
        if self._joined is None:
            readings = [self._readings(line) for line in range(1, self.line_count + 1)]
            self._joined = []
            for variant in range(3):
                pieces = [reading[variant] for reading in readings]
                starts, offset = [], 0
                for piece in pieces:
                    starts.append(offset)
                    offset += len(piece) + 1
                self._joined.append(("\n".join(pieces), starts))
        return self._joined


def _csv_cells(line: str, delimiter: str = ",") -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return line.split(delimiter)


def _typed_cell(cell: str) -> object:
    """A CSV cell as the value it stands for: a boolean, None (empty), a float, or the text itself."""
    text = cell.strip()
    if text in ("True", "true", "False", "false"):
        return text.lower() == "true"
    if not text:
        return None
    if _CSV_FLOAT.match(text):
        return float(text)
    return cell


def _read_lines(path: Path) -> list[str]:
    text = path.read_bytes().decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # a final newline ends the last line; it does not start another
    return [line.removesuffix("\r") for line in lines]


class Resolver:
    """Resolve citations of one report, in report order, to files under ``root``."""

    def __init__(self, root: Path, report_paths: Iterable[str] = ()) -> None:
        """Remember the root; every resolved file must lie inside its real (symlink-free) path.

        Args:
            root: The audit root.
            report_paths: Every path the report writes out, in any order; ``JSON L4`` falls back to the only
                JSON file among them when no JSON was cited before it.

        """
        self.root = root
        self._real_root = root.resolve()
        self._cited: list[str] = []
        self._files: dict[Path, SourceFile] = {}
        self._report_jsons = sorted({path for path in report_paths if path.lower().endswith(".json")})

    def resolve(self, citation: Citation) -> SourceFile | Unresolved:
        """Find the file a citation names and check that its lines exist.

        Args:
            citation: The next citation of the report.

        Returns:
            The file, or why the citation cannot be resolved.

        """
        path = self._path_for(citation)
        if isinstance(path, Unresolved):
            return path
        if citation.kind in (CitationKind.PATH, CitationKind.ELIDED):
            self._cited.append(path)
        if (why := forbidden_reason(path)) is not None:
            return Unresolved(path, why, forbidden=True)
        source = self._open(path)
        if isinstance(source, Unresolved):
            return source
        return _check_ranges(source, citation.ranges) or source

    def _path_for(self, citation: Citation) -> str | Unresolved:
        if citation.kind is CitationKind.PATH:
            return citation.path
        if citation.kind is CitationKind.ROW:
            csvs = [path for path in self._cited if path.lower().endswith(".csv")]
            if csvs:
                return csvs[-1]
            return Unresolved(None, f"'{citation.text}' but no CSV was cited before it")
        if citation.kind is CitationKind.JSON:
            return self._json_for(citation)
        if citation.kind is CitationKind.LINE:
            if self._cited:
                return self._cited[-1]
            return Unresolved(None, f"'{citation.text}' names a line but no file was cited before it")
        for path in reversed(self._cited):
            if path.endswith(citation.path):
                return path
        if not citation.path:
            return Unresolved(None, f"'{citation.text}' elides the path but no file was cited before it")
        return self._search_root(citation)

    def _json_for(self, citation: Citation) -> str | Unresolved:
        jsons = [path for path in self._cited if path.lower().endswith(".json")]
        if jsons:
            return jsons[-1]
        if len(self._report_jsons) == 1:
            return self._report_jsons[0]
        what = "none" if not self._report_jsons else f"{len(self._report_jsons)} of them"
        return Unresolved(None, f"'{citation.text}': no JSON file cited before it and the report cites {what}")

    def _search_root(self, citation: Citation) -> str | Unresolved:
        """Last resort for ``…suffix``: the one file under root whose path ends with the suffix."""
        candidates = []
        for folder, subfolders, files in os.walk(self.root):
            # Skip .git, .venv and other hidden trees: they are large and never hold cited artifacts.
            subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
            for name in files:
                relative = (Path(folder) / name).relative_to(self.root).as_posix()
                if relative.endswith(citation.path):
                    candidates.append(relative)
        candidates.sort()
        if len(candidates) == 1:
            return candidates[0]
        what = "no file" if not candidates else f"{len(candidates)} files ({', '.join(candidates[:3])})"
        return Unresolved(
            None, f"elided path '\u2026{citation.path}' matches no earlier citation and {what} under root"
        )

    def _open(self, written: str) -> SourceFile | Unresolved:
        try:
            return self._open_checked(written)
        except (OSError, ValueError) as e:  # a name too long, a NUL byte, an unreadable file: the citation fails
            shown = written if len(written) <= 120 else written[:117] + "\u2026"
            return Unresolved(shown, f"{shown}: cannot be read ({getattr(e, 'strerror', None) or e})")

    def _open_checked(self, written: str) -> SourceFile | Unresolved:
        path = Path(written)
        candidate = path if path.is_absolute() else self.root / path
        real = candidate.resolve()
        if not real.is_relative_to(self._real_root):
            if path.is_absolute():
                why = "absolute path outside the audit root"
            elif ".." in path.parts:
                why = "'..' leads outside the audit root"
            else:
                why = "a symlink leads outside the audit root"
            return Unresolved(written, f"{written}: {why} {self.root}; refusing to read it")
        if not real.is_file():
            what = "is a directory" if real.is_dir() else "not found"
            return Unresolved(written, f"{written}: {what} under root {self.root}")
        if real not in self._files:
            name = real.relative_to(self._real_root).as_posix() if path.is_absolute() else written
            self._files[real] = SourceFile(name, _read_lines(real))
        return self._files[real]


def _check_ranges(source: SourceFile, ranges: tuple[tuple[int, int], ...]) -> Unresolved | None:
    for first, last in ranges:
        if first > last:
            return Unresolved(source.name, f"range {first}\u2013{last} is reversed")
        if first < 1 or last > source.line_count:
            bad = first if first < 1 else last
            return Unresolved(
                source.name, f"line {bad} out of range: {source.name} has {source.line_count} lines"
            )
    return None
