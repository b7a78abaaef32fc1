r"""Extract every scalar in a model's probe artifacts as a Fact that cites its ``file:line``.

Fact keys (the grammar reports and audits cite; ``name`` is ``[A-Za-z_][A-Za-z0-9_-]*`` written bare, any
other key or column is written as a JSON string, e.g. ``["top 1"]``, so no key can be mistaken for syntax)::

    json_key  := FILE ":" path
    path      := "$" | (name | step) ("." name | step)*      "$" is the root of a scalar document
    step      := "[" INT "]" | "[" JSON_STRING "]"
    csv_key   := FILE "[" kv ("," kv)* "]" ("." name | "[" JSON_STRING "]")
    kv        := (name | JSON_STRING) "=" cell              key columns in manifest order
    cell      := the cell's raw text; JSON-quoted if empty or holding whitespace, '"', '\', ',', '=', '[', ']'

    probe.json:diagnostics.milestones.L_semantic    probe.json:per_prompt[0].prompt_id
    pure-next-token.csv[prompt_id=pos,variant=orig,layer=3].entropy_bits

Objects and arrays are *blocks*, not facts: ``FactSet.get`` finds them (value = item count, unit ``items`` or
``keys``, cited as a line range) but iteration yields only scalar and derived facts.
"""

from __future__ import annotations

import bisect
import csv
import difflib
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Union

from reportgen.errors import ReportError
from reportgen.jsonmap import format_path, parse_json_map, quote_name

FactValue = Union[float, int, str, bool, None]

MANIFEST = "manifest.json"
SCHEMA_MAJOR = "1"
_SUGGEST_POOL = 2000  # difflib candidates at most; it is linear in them
_BARE_CELL = re.compile(r'[^\s,=\[\]"\\]+')
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?i:nan|inf|infinity)")


# (pattern, unit): ``re.search`` on the last key or the column name; the first match wins, so the specific
# suffixes come before the broad prefixes. Units attach only to numbers.
UNIT_RULES: tuple[tuple[str, str], ...] = (
    (r"_bits$", "bits"),  # entropy_bits, kl_bits
    (r"_nats$", "nats"),
    (r"(^|_)frac(_|$)", "fraction"),  # depth_frac, frac_layers
    (r"_pct$", "percent"),
    (r"(^|_)bytes$", "bytes"),
    (r"_ms$", "milliseconds"),
    (r"_s$", "seconds"),  # load_s, wall_s
    # "prob" alone, or "prob_…"/"probability…": a bare prefix would tag probe_count or problems too.
    (r"^(p_|prob$|prob_|probability)", "probability"),
    (r"^layer$|^L_|_layer$", "layer"),  # layer, L_semantic, first_layer
)
_COMPILED_RULES = tuple((re.compile(pattern), unit) for pattern, unit in UNIT_RULES)


def infer_unit(name: str) -> str | None:
    """Return the unit a key or column name implies under ``UNIT_RULES``, or None when no rule matches."""
    return next((unit for pattern, unit in _COMPILED_RULES if pattern.search(name)), None)


@dataclass(frozen=True, slots=True)
class Fact:
    """One value from an artifact, with its unit and where it is written.

    Attributes:
        key: Stable name, see the module docstring for the grammar.
        value: The scalar as parsed (JSON types; CSV cells typed per column).
        unit: From ``infer_unit`` for numbers, else None.
        file: Artifact path relative to the model's run directory.
        line: 1-based line the value is on; for a derived fact, its first source's.
        end_line: Last line; equals ``line`` except for blocks (objects and arrays).
        sources: Keys of the facts a derived fact was computed from; empty for extracted facts.
        formula: How a derived fact was computed from its sources, e.g. ``L_semantic / n_layers``.
        source_citations: Citations of the sources, flattened through derived sources.

    """

    key: str
    value: FactValue
    unit: str | None
    file: str
    line: int
    end_line: int
    sources: tuple[str, ...] = ()
    formula: str | None = None
    source_citations: tuple[str, ...] = ()

    def cite(self) -> str:
        """Return ``file:line``, ``file:start–end`` (en dash) for blocks, or the sources' citations joined."""
        if self.sources:
            return "; ".join(self.source_citations)
        if self.end_line != self.line:
            return f"{self.file}:{self.line}\u2013{self.end_line}"
        return f"{self.file}:{self.line}"

    def to_dict(self) -> dict[str, Any]:
        """Return the fact as JSON-ready data with ``cite``; derived facts add ``sources`` and ``formula``."""
        data = {"key": self.key, "value": self.value, "unit": self.unit, "file": self.file,
                "line": self.line, "end_line": self.end_line, "cite": self.cite()}
        return {**data, "sources": list(self.sources), "formula": self.formula} if self.sources else data


# A CSV cell's Fact fields (key, value, unit, file, line, end_line). Frozen-dataclass construction costs ~1 us
# per fact, most of the extraction time for a 10k-row table, so cells stay tuples until someone reads them.
_Pending = tuple[str, FactValue, Union[str, None], str, int, int]


class FactSet:
    """All facts of one model run, by key, in artifact then document order; derived facts can be added."""

    def __init__(self, facts: Iterable[Fact | _Pending] = (), blocks: Iterable[Fact] = ()) -> None:
        """Index facts (or their field tuples) and blocks by key; raise ReportError if two share a key."""
        self._facts = _index(facts)
        self._blocks = _index(blocks)
        if clash := self._facts.keys() & self._blocks.keys():
            raise ReportError(f"fact key {min(clash)!r} is defined twice; keys must be unique")

    def __iter__(self) -> Iterator[Fact]:
        return map(_materialize, self._facts.values())

    def __len__(self) -> int:
        return len(self._facts)

    def __contains__(self, key: object) -> bool:
        return key in self._facts or key in self._blocks

    def get(self, key: str) -> Fact:
        """Return the fact or block with this key.

        Raises:
            ReportError: Unknown key; the message lists the closest known keys.

        """
        entry = self._facts.get(key) or self._blocks.get(key)
        if entry is None:
            close = _close_keys(key, [*self._facts, *self._blocks])
            hint = f"; did you mean {' or '.join(close)}?" if close else "; list keys with `reportgen facts`"
            raise ReportError(f"unknown fact key {key!r}{hint}")
        return _materialize(entry)

    def by_prefix(self, prefix: str) -> list[Fact]:
        """Return the facts whose key starts with ``prefix``, in order, e.g. ``probe.json:per_prompt[0].``."""
        return [_materialize(entry) for key, entry in self._facts.items() if key.startswith(prefix)]

    def blocks(self) -> list[Fact]:
        """Return the JSON object and array blocks, in document order."""
        return list(self._blocks.values())

    def to_json(self) -> list[dict[str, Any]]:
        """Return every fact (not blocks) as ``Fact.to_dict`` data."""
        return [fact.to_dict() for fact in self]

    def add_derived(
        self, key: str, value: FactValue, unit: str | None, sources: Sequence[str], formula: str
    ) -> Fact:
        """Add a fact computed from others, citing all of them.

        Args:
            key: New key; must not exist yet (e.g. ``derived:L_semantic_frac``).
            value: The computed value.
            unit: Its unit, or None.
            sources: Keys of existing facts it was computed from, first one first.
            formula: How it was computed, e.g. ``L_semantic / n_layers``.

        Returns:
            The new fact; its ``file``/``line`` are its first source's.

        Raises:
            ReportError: The key exists, no sources are given, or a source key is unknown.

        """
        if key in self:
            raise ReportError(f"fact key {key!r} is defined twice; keys must be unique")
        if not sources:
            raise ReportError(f"derived fact {key!r} needs at least one source fact to cite")
        parents = [self.get(source) for source in sources]
        # dict.fromkeys: flatten derived parents' citations, dropping repeats but keeping order.
        citations = dict.fromkeys(c for p in parents for c in (p.source_citations or (p.cite(),)))
        file, line, end_line = parents[0].file, parents[0].line, parents[0].end_line
        fact = Fact(key, value, unit, file, line, end_line, tuple(sources), formula, tuple(citations))
        self._facts[key] = fact
        return fact


def extract_facts(model_dir: Path) -> FactSet:
    """Read ``manifest.json``, verify every artifact's sha256, and extract all JSON leaves and CSV cells.

    Artifacts of other kinds (plots, text) are hash-checked but hold no facts.

    Args:
        model_dir: One model's run directory, ``RUN/<model>/``.

    Returns:
        The facts (JSON scalar leaves and CSV cells, in manifest then document order) and JSON blocks.

    Raises:
        ReportError: Missing or malformed manifest, missing artifact, sha256 mismatch, invalid JSON or CSV,
            or two CSV rows with the same key.

    """
    facts: list[Fact | _Pending]
    facts, blocks = [], []
    for artifact in _read_manifest(model_dir):
        text = _read_verified(model_dir, artifact)
        if artifact["kind"] == "json":
            leaves, containers = _json_facts(artifact["path"], text)
            facts += leaves
            blocks += containers
        elif artifact["kind"] == "csv":
            facts += _csv_facts(artifact["path"], text, artifact.get("key_columns"), artifact.get("columns"))
    return FactSet(facts, blocks)


def format_facts(factset: FactSet, as_json: bool) -> str:
    """Render facts for ``reportgen facts``: ``key = value unit  (cite)`` lines, or a JSON array."""
    if as_json:
        return json.dumps(factset.to_json(), indent=2, ensure_ascii=False)
    return "\n".join(
        f"{f.key} = {json.dumps(f.value, ensure_ascii=False)}{' ' + f.unit if f.unit else ''}  ({f.cite()})"
        for f in factset
    )


def _read_manifest(model_dir: Path) -> list[dict[str, Any]]:
    """Load the manifest and check the fields this module relies on (the rest is the probe's schema)."""
    path = model_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ReportError(f"{path}: no manifest ({e.strerror}); pass RUN/<model>/ from `probe run`") from e
    except ValueError as e:  # UnicodeDecodeError included
        raise ReportError(f"{path}: manifest is not valid JSON: {e}") from e
    version = str(manifest.get("schema_version", "")) if isinstance(manifest, dict) else ""
    if version.split(".")[0] != SCHEMA_MAJOR:
        raise ReportError(f"{path}: schema_version {version!r} is not {SCHEMA_MAJOR}.x; re-run `probe run`")
    artifacts = manifest.get("artifacts")
    if not isinstance(artifacts, list):
        raise ReportError(f"{path}: 'artifacts' must be a list, found {type(artifacts).__name__}")
    for i, entry in enumerate(artifacts):
        where, fields = f"{path}: artifacts[{i}]", ("path", "kind", "sha256")
        if not isinstance(entry, dict) or not all(isinstance(entry.get(f), str) for f in fields):
            raise ReportError(f"{where}: expected an object with string {', '.join(fields)}, found {entry!r}")
        if PurePosixPath(entry["path"]).is_absolute() or ".." in PurePosixPath(entry["path"]).parts:
            raise ReportError(f"{where}: path {entry['path']!r} must stay inside the model directory")
    return artifacts


def _read_verified(model_dir: Path, artifact: dict[str, Any]) -> str:
    """Read an artifact, check its sha256 against the manifest, and return its text with LF newlines."""
    name = artifact["path"]
    try:
        data = (model_dir / name).read_bytes()
    except OSError as e:
        raise ReportError(f"{model_dir / name}: listed in {MANIFEST} but unreadable: {e.strerror}") from e
    found = hashlib.sha256(data).hexdigest()
    if found != artifact["sha256"].lower():
        raise ReportError(
            f"{name}: sha256 mismatch: manifest expects {artifact['sha256']}, file has {found}; "
            "the artifact changed after the probe wrote it, so re-run `probe run`"
        )
    try:
        text = data.decode("utf-8-sig")  # -sig: a BOM would otherwise glue itself to the first CSV column
    except UnicodeDecodeError as e:
        raise ReportError(f"{name}: byte {e.start} is not UTF-8: {e.reason}") from e
    # Universal newlines, as editors count lines; the contract forbids newlines inside values anyway.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _json_facts(name: str, text: str) -> tuple[list[Fact], list[Fact]]:
    """Return (scalar leaves, object/array blocks) of one JSON artifact."""
    leaves: list[Fact]
    blocks: list[Fact]
    leaves, blocks = [], []
    for node in parse_json_map(text, source=name).nodes:
        key = f"{name}:{format_path(node.path)}"
        if isinstance(node.value, (dict, list)):
            unit = "keys" if isinstance(node.value, dict) else "items"
            blocks.append(Fact(key, len(node.value), unit, name, node.line, node.end_line))
            continue
        # Array elements take the unit of the list's name: entropy_bits[3] is in bits.
        label = next((part for part in reversed(node.path) if isinstance(part, str)), "")
        unit = infer_unit(label) if type(node.value) in (int, float) else None  # type(): bool is no number
        leaves.append(Fact(key, node.value, unit, name, node.line, node.end_line))
    return leaves, blocks


def _csv_facts(name: str, text: str, key_columns: Any, columns: Any = None) -> list[_Pending]:
    """Return one pending fact per cell, on physical lines (header = 1), rows keyed by ``key_columns``.

    When the manifest lists the ``columns``, the header must be exactly that list: a renamed or swapped header
    would bind every value of those columns to the wrong name.
    """
    header, rows = _read_csv(name, text)
    if isinstance(columns, list) and header != columns:
        diff = next(i for i, (a, b) in enumerate(zip([*header, None], [*columns, None])) if a != b)
        found = header[diff] if diff < len(header) else "nothing"
        wanted = columns[diff] if diff < len(columns) else "nothing"
        raise ReportError(f"{name}:1: column {diff + 1} is {found!r} but {MANIFEST} lists {wanted!r}; the header "
                          "does not match the manifest's column list, so re-run `probe run`")
    if not (isinstance(key_columns, list) and key_columns and all(k in header for k in key_columns)):
        raise ReportError(f"{MANIFEST}: key_columns of {name} must be a non-empty list of columns from its "
                          f"header {header}, found {key_columns!r}")
    key_parts = [(quote_name(k) + "=", header.index(k)) for k in key_columns]
    suffixes = [f".{c}" if quote_name(c) == c else f"[{quote_name(c)}]" for c in header]
    # One type per column: a token column holding "nan", "1" or "True" must stay text (see _parse_column).
    columns = [_parse_column([cells[j] for _, cells in rows]) for j in range(len(header))]
    units = [infer_unit(col) if numeric else None for col, (_, numeric) in zip(header, columns, strict=True)]
    values_by_row = zip(*(values for values, _ in columns), strict=True)
    facts: list[_Pending] = []
    first_line: dict[str, int] = {}
    for (line, cells), values in zip(rows, values_by_row, strict=True):
        row_key = f"{name}[{','.join(label + _cell_key(cells[i]) for label, i in key_parts)}]"
        if row_key in first_line:
            raise ReportError(f"{name}: lines {first_line[row_key]} and {line} share the key {row_key}; "
                              f"key_columns {key_columns} must identify one row")
        first_line[row_key] = line
        facts += [
            (row_key + suffix, value, unit if value is not None else None, name, line, line)
            for suffix, value, unit in zip(suffixes, values, units, strict=True)
        ]
    return facts


def _read_csv(name: str, text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Split CSV text into the header and (physical line, cells) rows, rejecting multi-line records."""
    # The final newline ends the last line; it does not start another.
    reader = csv.reader(text.removesuffix("\n").split("\n"), strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        for line, cells in enumerate(reader, start=1):
            # A quoted newline makes csv.reader consume several lines for one record: line_num runs ahead.
            if reader.line_num != line:
                raise ReportError(f"{name}:{line}\u2013{reader.line_num}: one record spans several lines (a "
                                  "quoted newline); the artifact contract is one record per physical line")
            if not cells:
                continue  # blank line: no record, but it still counts for the line numbers
            if rows and len(cells) != len(rows[0][1]):
                raise ReportError(f"{name}:{line}: expected {len(rows[0][1])} cells as in the header, "
                                  f"found {len(cells)}")
            rows.append((line, cells))
    except csv.Error as e:
        raise ReportError(f"{name}:{reader.line_num}: malformed CSV: {e}") from e
    if not rows or rows[0][0] != 1:
        raise ReportError(f"{name}:1: expected a header line, found an empty line or file")
    header = rows[0][1]
    if repeated := sorted(column for column, n in Counter(header).items() if n > 1):
        raise ReportError(f"{name}:1: header repeats columns {repeated}; each column needs a unique name")
    return header, rows[1:]


def _parse_column(cells: list[str]) -> tuple[list[FactValue], bool]:
    """Parse a whole column with one type, returning its values and whether they are numbers.

    Typing per column, not per cell, keeps a text column (e.g. next tokens) text even where one token reads
    like ``1``, ``nan`` or ``True``. Empty cells are None in every column (pandas writes NaN/None as empty).
    """
    filled = [cell for cell in cells if cell]
    parse: Callable[[str], FactValue]
    if all(map(_INT.fullmatch, filled)):  # map(): no Python frame per cell
        parse, numeric = int, True
    elif all(map(_FLOAT.fullmatch, filled)):
        parse, numeric = float, True
    elif all(cell in ("True", "False") for cell in filled):
        parse, numeric = "True".__eq__, False
    else:
        parse, numeric = str, False
    if len(filled) == len(cells):
        return list(map(parse, cells)), numeric  # no gaps: map() runs the parser at C speed
    return [parse(cell) if cell else None for cell in cells], numeric


def _index(entries: Iterable[Fact | _Pending]) -> dict[str, Fact | _Pending]:
    """Map key to fact (or pending field tuple), raising on a repeated key."""
    items = list(entries)
    # Bulk build then compare sizes: a membership check per entry doubles the cost for 100k+ cells.
    keys = [entry[0] if type(entry) is tuple else entry.key for entry in items]  # inline: no call per entry
    index = dict(zip(keys, items, strict=True))
    if len(index) != len(items):
        repeated = next(key for key, n in Counter(keys).items() if n > 1)
        raise ReportError(f"fact key {repeated!r} is defined twice; keys must be unique")
    return index


def _materialize(entry: Fact | _Pending) -> Fact:
    return Fact(*entry) if isinstance(entry, tuple) else entry


def _cell_key(cell: str) -> str:
    """Write a key cell's raw text bare, or JSON-quoted when it could be mistaken for key syntax."""
    return cell if _BARE_CELL.fullmatch(cell) else json.dumps(cell, ensure_ascii=False)


def _close_keys(key: str, keys: list[str]) -> list[str]:
    """Return up to 3 known keys closest to ``key``, narrowing huge pools first so an error stays fast."""
    if len(keys) > _SUGGEST_POOL:
        # A typo is usually in one part: keep keys sharing the part before the last '.' or the part after it,
        # then the neighbours in sorted order (they share the longest prefix); difflib is linear in the pool.
        head, _, tail = key.rpartition(".")
        keys = sorted(k for k in keys if head and k.startswith(head + ".") or tail and k.endswith("." + tail))
        at = bisect.bisect(keys, key)
        keys = keys[max(0, at - _SUGGEST_POOL // 2) : at + _SUGGEST_POOL // 2]
    return difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
