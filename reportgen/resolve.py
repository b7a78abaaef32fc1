r"""Turn citations into lines of files under an audit root, refusing any path that leads outside it.

Elided citations are resolved against the report's history, which is why `Resolver` is stateful and must see
the citations in report order: ``…suffix:N`` stands for the most recent cited path ending in ``suffix``
(or, if none, the single file under root whose path ends so), a bare ``:N`` for the file cited just before,
and ``[row N in CSV]`` for the most recently cited ``.csv``. A citation's path is remembered even when the
file turns out to be missing, so a following ``:N`` is reported against the same (missing) file rather than
an older one.

Lines are split on ``\n`` only (``\r`` stripped): `str.splitlines` also splits on U+2028 and other
separators that JSON may carry raw inside strings, which would shift every later line number.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from reportgen.citations import Citation, CitationKind
from reportgen.numbers import NumberToken, matches, numbers_in_line

__all__ = ["Resolver", "SourceFile", "Unresolved"]

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_ELLIPSIS = re.compile(r"\u2026|\.\.\.")


@dataclass(frozen=True)
class Unresolved:
    """A citation that cannot be checked: the path as understood (if any) and why."""

    path: str | None
    reason: str


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
        if number not in self._texts:
            raw = self.line(number)
            # Three readings: as written, JSON strings decoded, and CSV's doubled quotes undone.
            variants = (raw, _decode_json_strings(raw), raw.replace('""', '"'))
            self._texts[number] = tuple(_normalise(variant) for variant in variants)
        parts = [_normalise(part) for part in _ELLIPSIS.split(quote) if part.strip()]
        return bool(parts) and any(all(part in text for part in parts) for text in self._texts[number])


def _read_lines(path: Path) -> list[str]:
    text = path.read_bytes().decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # a final newline ends the last line; it does not start another
    return [line.removesuffix("\r") for line in lines]


class Resolver:
    """Resolve citations of one report, in report order, to files under ``root``."""

    def __init__(self, root: Path) -> None:
        """Remember the root; every resolved file must lie inside its real (symlink-free) path."""
        self.root = root
        self._real_root = root.resolve()
        self._cited: list[str] = []
        self._files: dict[Path, SourceFile] = {}

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
        if citation.kind is not CitationKind.ROW:
            self._cited.append(path)
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
        for path in reversed(self._cited):
            if path.endswith(citation.path):
                return path
        if not citation.path:
            return Unresolved(None, f"'{citation.text}' elides the path but no file was cited before it")
        return self._search_root(citation)

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
