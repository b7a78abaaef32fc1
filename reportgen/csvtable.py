r"""One CSV artifact as facts without holding its cells: a streaming scan indexes row keys, cells are read on demand.

A report reads a few hundred cells of a next-token table, while a run's ``records.csv`` can hold millions. Building
one Python object per cell costs about 27 times the file size; here the scan keeps only what a lookup needs:

- the byte offset of every physical line (8 bytes a line),
- row key -> line (one short string and an int a row),
- one type per column (decided over the whole column, as `reportgen.facts` documents),

and verifies the manifest's sha256 in the same pass. ``get`` seeks to a row's line and parses that line only;
iteration streams the file again. Lines are split on ``\\n`` (a ``\\r\\n`` ending is one break): the contract is
one record per physical line, so a quoted line break is an error naming both lines.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Union

from reportgen.errors import ReportError

FactValue = Union[float, int, str, bool, None]
Row = tuple[str, FactValue, Union[str, None], str, int, int]  # Fact fields: key, value, unit, file, line, end_line

_BARE_CELL = re.compile(r'[^\s,=\[\]"\\]+')
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?i:nan|inf|infinity)")


def cell_key(cell: str) -> str:
    """Write a key cell's raw text bare, or JSON-quoted when it could be mistaken for key syntax."""
    return cell if _BARE_CELL.fullmatch(cell) else json.dumps(cell, ensure_ascii=False)


def _narrow(kind: str, cell: str) -> str:
    """The type a column can still have after one more filled cell (empty -> int -> float; bool; else text)."""
    if kind in ("empty", "int") and _INT.fullmatch(cell):
        return "int"
    if kind in ("empty", "int", "float") and _FLOAT.fullmatch(cell):
        return "float"
    if kind in ("empty", "bool") and cell in ("True", "False"):
        return "bool"
    return "text"


_PARSE: dict[str, Callable[[str], FactValue]] = {"int": int, "float": float, "bool": "True".__eq__, "text": str}


class CsvTable:
    """A CSV artifact indexed by a streaming scan; see the module docstring."""

    def __init__(self, name: str, path: Path, sha256: str, key_columns: Any, columns: Any, quote: Callable[[str], str],
                 unit_of: Callable[[str], str | None]) -> None:
        """Scan the file once: check the contract and the sha256, index row keys and type the columns.

        Args:
            name: The artifact's path in the manifest (the fact key prefix).
            path: Where the file is.
            sha256: The manifest's hash of the file.
            key_columns: The manifest's key columns (they identify a row).
            columns: The manifest's column list, or None; when given, the header must equal it.
            quote: Writes a column name as a fact key part (`reportgen.jsonmap.quote_name`).
            unit_of: The unit a numeric column's name implies (`reportgen.facts.infer_unit`).

        Raises:
            ReportError: Unreadable file, sha256 mismatch, non-UTF-8 byte, malformed CSV, a record over several
                lines, a wrong cell count, a header off the manifest, bad key columns, or a repeated row key.
        """
        self.name, self.path = name, path
        self.offsets = array("Q")
        self.rows: dict[str, int] = {}
        self.header: list[str] = []
        self._scan(sha256, key_columns, columns)
        self.suffixes = [f".{c}" if quote(c) == c else f"[{quote(c)}]" for c in self.header]
        self.units = [unit_of(c) if kind in ("int", "float") else None for c, kind in zip(self.header, self.kinds)]
        self._data: bytes | None = None

    # --- scanning ------------------------------------------------------------------------------------------------

    def _scan(self, sha256: str, key_columns: Any, columns: Any) -> None:
        digest = hashlib.sha256()
        try:
            handle = self.path.open("rb")
        except OSError as e:
            raise ReportError(f"{self.path}: listed in manifest.json but unreadable: {e.strerror}") from e
        kinds: list[str] = []
        key_at: list[int] = []
        with handle:
            reader = csv.reader(self._lines(handle, digest), strict=True)  # one reader: no object per line
            number = 0
            try:
                for cells in reader:
                    number += 1
                    if reader.line_num != number:  # a quoted newline made the reader consume several lines
                        raise ReportError(f"{self.name}:{number}\u2013{reader.line_num}: one record spans several "
                                          "lines (a quoted newline); the artifact contract is one record per "
                                          "physical line")
                    if not cells:
                        continue  # blank line: no record, but it still counts for the line numbers
                    if not self.header:
                        if number != 1:
                            break
                        key_at = self._set_header(cells, key_columns, columns)
                        kinds = ["empty"] * len(cells)
                        continue
                    if len(cells) != len(self.header):
                        raise ReportError(f"{self.name}:{number}: expected {len(self.header)} cells as in the "
                                          f"header, found {len(cells)}")
                    for j, cell in enumerate(cells):
                        if cell and kinds[j] != "text":
                            kinds[j] = _narrow(kinds[j], cell)
                    self._add_row(cells, key_at, number)
            except csv.Error as e:
                raise ReportError(f"{self.name}:{reader.line_num}: malformed CSV: {e}") from e
            for _ in handle:  # a header-less file: hash the rest so the error below is the right one
                pass
        if not self.header:
            raise ReportError(f"{self.name}:1: expected a header line, found an empty line or file")
        if digest.hexdigest() != sha256.lower():
            raise ReportError(f"{self.name}: sha256 mismatch: manifest expects {sha256}, file has "
                              f"{digest.hexdigest()}; the artifact changed after the probe wrote it, so re-run "
                              "`probe run`")
        self.kinds = ["text" if kind == "empty" else kind for kind in kinds]

    def _lines(self, handle: Any, digest: Any) -> Iterator[str]:
        """Decoded physical lines without their line break, recording each line's byte offset and hashing it."""
        offset = 0
        for number, raw in enumerate(handle, start=1):
            digest.update(raw)
            self.offsets.append(offset)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ReportError(f"{self.name}: byte {offset + e.start} is not UTF-8: {e.reason}") from e
            offset += len(raw)
            if number == 1:
                text = text.removeprefix("\ufeff")  # a BOM would otherwise glue itself to the first column
            yield text.removesuffix("\n").removesuffix("\r")

    def _cells(self, raw: bytes, number: int, offset: int) -> list[str] | None:
        """The cells of one physical line; None for a blank line."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ReportError(f"{self.name}: byte {offset + e.start} is not UTF-8: {e.reason}") from e
        if number == 1:
            text = text.removeprefix("\ufeff")  # a BOM would otherwise glue itself to the first column
        text = text.removesuffix("\n").removesuffix("\r")
        if not text:
            return None
        try:
            cells = next(csv.reader([text], strict=True))
        except csv.Error as e:
            if "unexpected end of data" in str(e) or text.count('"') % 2:
                raise ReportError(f"{self.name}:{number}\u2013{number + 1}: one record spans several lines (a "
                                  "quoted newline); the artifact contract is one record per physical line") from e
            raise ReportError(f"{self.name}:{number}: malformed CSV: {e}") from e
        return cells

    def _set_header(self, cells: list[str], key_columns: Any, columns: Any) -> list[int]:
        repeated = sorted({c for c in cells if cells.count(c) > 1})
        if repeated:
            raise ReportError(f"{self.name}:1: header repeats columns {repeated}; each column needs a unique name")
        if isinstance(columns, list) and cells != columns:
            at = next(i for i, (a, b) in enumerate(zip([*cells, None], [*columns, None])) if a != b)
            found = cells[at] if at < len(cells) else "nothing"
            wanted = columns[at] if at < len(columns) else "nothing"
            raise ReportError(f"{self.name}:1: column {at + 1} is {found!r} but manifest.json lists {wanted!r}; the "
                              "header does not match the manifest's column list, so re-run `probe run`")
        if not (isinstance(key_columns, list) and key_columns and all(k in cells for k in key_columns)):
            raise ReportError(f"manifest.json: key_columns of {self.name} must be a non-empty list of columns from "
                              f"its header {cells}, found {key_columns!r}")
        self.header = cells
        self._labels = [self._quote_name(k) + "=" for k in key_columns]
        return [cells.index(k) for k in key_columns]

    @staticmethod
    def _quote_name(name: str) -> str:
        from reportgen.jsonmap import quote_name

        return quote_name(name)

    def _add_row(self, cells: list[str], key_at: list[int], number: int) -> None:
        key = f"{self.name}[{','.join(label + cell_key(cells[i]) for label, i in zip(self._labels, key_at))}]"
        if key in self.rows:
            raise ReportError(f"{self.name}: lines {self.rows[key]} and {number} share the key {key}; key_columns "
                              "must identify one row")
        self.rows[key] = number

    # --- reading ---------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.rows) * len(self.header)

    def _line_cells(self, number: int) -> list[str]:
        if self._data is None and self.path.stat().st_size <= 16 << 20:
            self._data = self.path.read_bytes()  # small tables (the ones reports read): one read, then slices
        start = self.offsets[number - 1]
        end = self.offsets[number] if number < len(self.offsets) else None
        if self._data is not None:
            raw = self._data[start:end]
        else:
            with self.path.open("rb") as handle:
                handle.seek(start)
                raw = handle.readline()
        cells = self._cells(raw, number, start)
        assert cells is not None, f"{self.name}:{number} was a data row when scanned"
        return cells

    def _row(self, key: str, number: int) -> list[Row]:
        return self._typed(key, number, self._line_cells(number))

    def _typed(self, key: str, number: int, cells: list[str]) -> list[Row]:
        out: list[Row] = []
        for suffix, cell, kind, unit in zip(self.suffixes, cells, self.kinds, self.units):
            value = _PARSE[kind](cell) if cell else None
            out.append((key + suffix, value, unit if value is not None else None, self.name, number, number))
        return out

    def get(self, key: str) -> Row | None:
        """The fact fields of one cell key (``name[k=v,…].column``), or None when the table has no such cell."""
        for index, suffix in enumerate(self.suffixes):
            if key.endswith(suffix) and (number := self.rows.get(key[: -len(suffix)])) is not None:
                return self._row(key[: -len(suffix)], number)[index]
        return None

    def __iter__(self) -> Iterator[Row]:
        """Every cell's fact fields, row by row in file order (streamed: nothing is kept)."""
        if self._data is None and self.path.stat().st_size > 16 << 20:
            with self.path.open("rb") as handle:  # a big table: one sequential read, not a seek per row
                for key, number in self.rows.items():
                    handle.seek(self.offsets[number - 1])
                    yield from self._typed(key, number, self._cells(handle.readline(), number, 0) or [])
            return
        for key, number in self.rows.items():
            yield from self._row(key, number)
