"""Check facts against the artifact text with the stdlib json and csv modules, never reportgen's own parsers.

Reusable by any test that has a run directory, e.g. the probe's real-run tests::

    factset = extract_facts(model_dir)
    assert_facts_on_lines(model_dir, factset)
    assert_facts_complete(model_dir, factset)
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

_NUMBER_TOKEN = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|-?Infinity|NaN")


def assert_facts_on_lines(model_dir: Path, factset: Any) -> int:
    """Assert every fact's cited physical line holds its value; return how many facts were checked.

    JSON facts: the line holds the JSON-encoded key (for object members) and, after it, the JSON-encoded
    value (or, for numbers, a numeric token equal to it). CSV facts: the line, parsed with ``csv``, has the
    value in the fact's column and the key columns' cells named in the fact's key. Derived facts: their
    citation is the de-duplicated citations of their sources, which must exist.
    """
    artifacts = {a["path"]: a for a in json.loads((model_dir / "manifest.json").read_text())["artifacts"]}
    lines_by_file: dict[str, list[str]] = {}
    csv_rows: dict[tuple[str, int], dict[str, str]] = {}
    checked = 0
    for fact in factset:
        if fact.sources:
            _check_derived(fact, factset)
            checked += 1
            continue
        assert fact.file in artifacts, f"{fact.key}: file {fact.file} is not in the manifest"
        if fact.file not in lines_by_file:
            # read_text: universal newlines, the same physical lines an editor shows.
            lines_by_file[fact.file] = (model_dir / fact.file).read_text(encoding="utf-8-sig").split("\n")
        lines = lines_by_file[fact.file]
        assert fact.line == fact.end_line, f"{fact.key}: a scalar spans lines {fact.line}-{fact.end_line}"
        assert 1 <= fact.line <= len(lines), f"{fact.key}: line {fact.line} is outside {fact.file}"
        text = lines[fact.line - 1]
        if artifacts[fact.file]["kind"] == "json":
            _check_json_line(fact, text)
        else:
            if (fact.file, fact.line) not in csv_rows:  # parse each physical line once, with the stdlib
                header = next(csv.reader([lines[0]]))
                csv_rows[fact.file, fact.line] = dict(zip(header, next(csv.reader([text])), strict=True))
            _check_csv_cells(fact, csv_rows[fact.file, fact.line], artifacts[fact.file]["key_columns"])
        checked += 1
    return checked


def assert_facts_complete(model_dir: Path, factset: Any) -> None:
    """Assert the fact set has exactly one fact per JSON scalar leaf and per CSV cell, per artifact."""
    artifacts = json.loads((model_dir / "manifest.json").read_text())["artifacts"]
    counts: dict[str, int] = {}
    for fact in factset:
        if not fact.sources:
            counts[fact.file] = counts.get(fact.file, 0) + 1
    for artifact in artifacts:
        text = (model_dir / artifact["path"]).read_text(encoding="utf-8-sig")
        if artifact["kind"] == "json":
            expected = _count_leaves(json.loads(text))
        elif artifact["kind"] == "csv":
            rows = [row for row in csv.reader(text.splitlines()) if row]
            expected = sum(len(row) for row in rows[1:])
        else:
            continue
        assert counts.get(artifact["path"], 0) == expected, f"{artifact['path']}: {counts} vs {expected}"


def _count_leaves(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_count_leaves(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count_leaves(v) for v in value)
    return 1


def _last_segment(path: str) -> str | int | None:
    """The last key (str) or index (int) of a rendered path; None for the root ``$``."""
    if path == "$":
        return None
    if path.endswith('"]'):
        # Inside a JSON string every '"' is escaped, so the last '["' starts the last quoted segment.
        return json.loads(path[path.rfind('["') + 1 : -1])
    if path.endswith("]"):
        return int(path[path.rfind("[") + 1 : -1])
    return path.rsplit(".", 1)[-1]


def _encodings(value: Any) -> set[str]:
    return {json.dumps(value), json.dumps(value, ensure_ascii=False)}


def _check_json_line(fact: Any, text: str) -> None:
    segment = _last_segment(fact.key[len(fact.file) + 1 :])
    start = 0
    if isinstance(segment, str):
        ends = [text.find(enc) + len(enc) for enc in _encodings(segment) if enc in text]
        assert ends, f"{fact.key}: key {segment!r} not on {fact.file}:{fact.line}: {text!r}"
        start = min(ends)
    rest = text[start:]
    if any(enc in rest for enc in _encodings(fact.value)):
        return
    if isinstance(fact.value, (int, float)) and not isinstance(fact.value, bool):
        for token in _NUMBER_TOKEN.findall(rest):
            if float(token) == fact.value or (math.isnan(fact.value) and token == "NaN"):
                return
    raise AssertionError(f"{fact.key}: value {fact.value!r} not on {fact.file}:{fact.line}: {text!r}")


def _check_csv_cells(fact: Any, cells: dict[str, str], key_columns: list[str]) -> None:
    column = _csv_column(fact.key)
    assert column in cells, f"{fact.key}: no column {column!r} in {list(cells)}"
    cell = cells[column]
    assert _cell_equals(cell, fact.value), f"{fact.key}: cell {cell!r} on line {fact.line} != {fact.value!r}"
    for name in key_columns:
        shown = {f"{name}={cells[name]}", f"{name}={json.dumps(cells[name], ensure_ascii=False)}"}
        assert any(s in fact.key for s in shown), f"{fact.key}: line has key cell {name}={cells[name]!r}"


def _csv_column(key: str) -> str:
    """The column of a CSV fact key: a final ``["quoted"]`` segment, else the name after the last dot."""
    if key.endswith('"]'):
        return json.loads(key[key.rindex('["') + 1 : -1])
    return key.rsplit(".", 1)[-1]


def _cell_equals(cell: str, value: Any) -> bool:
    if value is None:
        return cell == ""
    if isinstance(value, bool):
        return cell == str(value)
    if isinstance(value, int):
        return int(cell) == value
    if isinstance(value, float):
        return float(cell) == value or (math.isnan(value) and math.isnan(float(cell)))
    return cell == value


def _check_derived(fact: Any, factset: Any) -> None:
    expected: list[str] = []
    for source in fact.sources:
        for citation in factset.get(source).cite().split("; "):
            if citation not in expected:
                expected.append(citation)
    assert fact.cite() == "; ".join(expected), f"{fact.key}: cites {fact.cite()!r}, sources give {expected}"
    first = factset.get(fact.sources[0])
    assert (fact.file, fact.line) == (first.file, first.line), f"{fact.key}: file/line not its first source's"


def rewrite_artifact(model_dir, name, text):
    """Replace one artifact's text and update its sha256 in the manifest, as a rerun would."""
    import hashlib
    import json

    (model_dir / name).write_text(text)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    for art in manifest["artifacts"]:
        if art["path"] == name:
            art["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    (model_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
