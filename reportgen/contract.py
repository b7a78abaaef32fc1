"""Check a model's probe.json against the probe's JSON Schema before anything is cited from it."""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema

from reportgen.errors import ReportError
from reportgen.jsonmap import format_path, parse_json_map


@lru_cache(maxsize=1)
def _validator() -> Any:
    schema = json.loads(files("probe").joinpath("schema/probe.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def check_probe_json(model_dir: Path) -> None:
    """Validate `model_dir/probe.json` against the schema.

    Raises:
        ReportError: naming `probe.json:LINE`, the JSON path and what the schema expected, for the first
            violation (an older or foreign artifact, or a hand-edited one).
    """
    path = model_dir / "probe.json"
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise ReportError(f"{path}: unreadable ({e.strerror}); re-run the probe") from e
    except UnicodeDecodeError as e:
        raise ReportError(f"{path}: byte {e.start} is not UTF-8 ({e.reason}); re-run the probe") from e
    jm = parse_json_map(text, str(path))  # names the line of a syntax error
    for node in jm.nodes:
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise ReportError(f"{path}:{node.line}: at {format_path(node.path)}: {node.value} is not a finite "
                              "number; a measurement that overflowed must not be published (re-run the probe)")
    doc = json.loads(text)
    error = next(iter(sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))), None)
    if error is None:
        return
    where = tuple(error.absolute_path)
    # The failing node may not exist (a missing required key): point at its parent object then.
    node_path = where
    while node_path:
        try:
            line = jm.node(node_path).line
            break
        except (KeyError, ReportError):
            node_path = node_path[:-1]
    else:
        line = 1
    raise ReportError(f"{path}:{line}: at {format_path(where)}: {error.message} "
                      f"(probe.json does not match probe/schema/probe.schema.json; re-run the probe)")
