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
import difflib
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Union

from reportgen.csvtable import CsvTable
from reportgen.errors import ReportError
from reportgen.jsonmap import format_path, parse_json_map, quote_name

FactValue = Union[float, int, str, bool, None]

MANIFEST = "manifest.json"
SCHEMA_MAJOR = "1"
_SUGGEST_POOL = 2000  # difflib candidates at most; it is linear in them


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
    """All facts of one model run, by key: JSON leaves, CSV cells (read on demand, see `reportgen.csvtable`) and
    derived facts, in artifact then document order with derived facts last."""

    def __init__(self, facts: Iterable[Fact | _Pending] = (), blocks: Iterable[Fact] = (),
                 tables: Iterable[CsvTable] = ()) -> None:
        """Index facts (or their field tuples), blocks and CSV tables; raise ReportError if two share a key."""
        self._facts = _index(facts)
        self._blocks = _index(blocks)
        self._tables = list(tables)
        if clash := self._facts.keys() & self._blocks.keys():
            raise ReportError(f"fact key {min(clash)!r} is defined twice; keys must be unique")

    def __iter__(self) -> Iterator[Fact]:
        plain = (entry for entry in self._facts.values() if type(entry) is tuple or not entry.sources)
        yield from map(_materialize, plain)
        for table in self._tables:
            yield from map(_materialize, table)
        yield from self.derived()

    def __len__(self) -> int:
        return len(self._facts) + sum(len(table) for table in self._tables)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self._facts or key in self._blocks or self._cell(key) is not None)

    def has_table(self, name: str) -> bool:
        """Whether the run has the CSV artifact ``name`` (e.g. ``records.csv``, absent after ``--no-records``)."""
        return any(t.name == name for t in self._tables)

    def _table(self, key: str) -> CsvTable | None:
        return next((t for t in self._tables if key.startswith(t.name + "[")), None)

    def _cell(self, key: str) -> _Pending | None:
        table = self._table(key)
        return table.get(key) if table is not None else None

    def get(self, key: str) -> Fact:
        """Return the fact or block with this key.

        Raises:
            ReportError: Unknown key; the message lists the closest known keys.

        """
        entry = self._facts.get(key) or self._blocks.get(key) or self._cell(key)
        if entry is None:
            close = _close_keys(key, self._candidates(key))
            hint = f"; did you mean {' or '.join(close)}?" if close else "; list keys with `reportgen facts`"
            raise ReportError(f"unknown fact key {key!r}{hint}")
        return _materialize(entry)

    def _candidates(self, key: str) -> list[str]:
        """Keys to suggest from: JSON, derived and block keys, and the cells of the table the key names."""
        keys = [*self._facts, *self._blocks]
        if (table := self._table(key)) is not None:
            suffix = next((s for s in table.suffixes if key.endswith(s)), None)
            # The row part ends at a "]"; when it names a row, the typo is in the column.
            rows = [key[: i + 1] for i, c in enumerate(key) if c == "]" and key[: i + 1] in table.rows]
            if rows:
                keys += [rows[-1] + s for s in table.suffixes]
            elif suffix:
                keys += [r + suffix for r in table.rows]
        return keys

    def by_prefix(self, prefix: str) -> list[Fact]:
        """Return the facts whose key starts with ``prefix``, in order, e.g. ``probe.json:per_prompt[0].``."""
        out = [_materialize(entry) for key, entry in self._facts.items() if key.startswith(prefix)]
        for table in self._tables:
            if table.name.startswith(prefix) or prefix.startswith(table.name + "["):
                out += [_materialize(row) for row in table if row[0].startswith(prefix)]
        return out

    def derived(self) -> list[Fact]:
        """Return the derived facts, in the order they were added."""
        return [entry for entry in self._facts.values() if type(entry) is not tuple and entry.sources]

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
    facts, blocks, tables = [], [], []
    for artifact in _read_manifest(model_dir):
        if artifact["kind"] == "csv":  # scanned and hashed in one pass; cells are read when asked for
            tables.append(CsvTable(artifact["path"], model_dir / artifact["path"], artifact["sha256"],
                                   artifact.get("key_columns"), artifact.get("columns"), quote_name, infer_unit))
            continue
        text = _read_verified(model_dir, artifact)
        if artifact["kind"] == "json":
            leaves, containers = _json_facts(artifact["path"], text)
            facts += leaves
            blocks += containers
    return FactSet(facts, blocks, tables)


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
