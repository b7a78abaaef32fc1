r"""Artifact writers: the line-addressed contract that reportgen cites.

Layout of one model's directory (`RUN/<model>/`), schema version SCHEMA_VERSION:

- `probe.json`: every measurement summary. Pretty-printed (indent 2), insertion-ordered keys fixed by the code,
  every scalar leaf on its own line, floats rounded to 7 significant digits, ASCII only (non-ASCII token text
  appears as \\uXXXX escapes). Validated by `probe/schema/probe.schema.json`.
- `pure-next-token.csv`: one row per (prompt_id, variant, layer) at the NEXT position (norm lens).
- `records.csv`: one row per (prompt_id, variant, layer, pos): top-k of the norm lens at every position.
- `raw-vs-norm.csv`: one row per (prompt_id, variant, layer): raw lens vs norm lens at NEXT.
- `raw-vs-norm-window.csv`: one row per (layer, lens) for the primary prompt around its milestones.
- `milestones.csv`: one row per (prompt_id, variant, milestone) with the layer and its pure-next-token.csv line.
- `manifest.json`: sha256/bytes/lines of each artifact, key columns of each CSV, versions, model, timings.
  The only file that differs between identical runs (timings, timestamps).

CSV rules: header on line 1; one record per physical line (token strings escape newlines, control and invisible
characters as \\n, \\uXXXX); "True"/"False" for flags; empty cell for null.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = "1.2"  # 1.1: lenses block, config.lenses, lens-<name>.csv tables; 1.2: lens summary
# mean_kl_final_to_lens_bits (KL(final ‖ lens), as the preferred-lens rule says; 1.1 averaged KL(lens ‖ final))
SIG_DIGITS = 7


def round_float(x: float) -> float | None:
    """Round to SIG_DIGITS significant digits; NaN/Inf become None (numeric health reports them separately)."""
    if math.isnan(x) or math.isinf(x):
        return None
    return float(f"{x:.{SIG_DIGITS}g}")


def clean(obj: Any) -> Any:
    """Recursively round floats and turn tuples into lists, so equal inputs serialize to equal bytes."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return round_float(obj)
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if hasattr(obj, "item"):  # numpy / torch scalars
        return clean(obj.item())
    raise TypeError(f"cannot serialize {type(obj).__name__} into an artifact")


def dumps_json(obj: Any) -> str:
    """Canonical artifact JSON: indent 2, ASCII, one scalar per line, trailing newline."""
    return json.dumps(clean(obj), indent=2, ensure_ascii=True, allow_nan=False) + "\n"


_INVISIBLE = {"Cc", "Cf", "Co", "Cs", "Zl", "Zp"}


def escape_token(s: str) -> str:
    """Make a token string safe for one CSV line and visible: backslash, newlines, control/format/private-use
    characters (ZWSP, BOM, bidi, TAG characters) become escapes; everything else stays as is."""
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif unicodedata.category(ch) in _INVISIBLE or 0xE0000 <= ord(ch) <= 0xE007F:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, float):
        r = round_float(v)
        return "" if r is None else repr(r)
    if isinstance(v, str):
        return escape_token(v)
    return str(v)


@dataclass(frozen=True)
class Table:
    """A CSV artifact: columns, the columns that identify a row, and the rows."""

    name: str
    columns: tuple[str, ...]
    key_columns: tuple[str, ...]
    rows: list[dict[str, Any]]

    def render(self) -> str:
        r"""CSV text with '\\n' line ends; raises if any record would span two lines."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        for i, row in enumerate(self.rows):
            extra = set(row) - set(self.columns)
            if extra:
                raise ValueError(f"{self.name} row {i}: unexpected columns {sorted(extra)}")
            w.writerow([_cell(row.get(c)) for c in self.columns])
        text = buf.getvalue()
        if text.count("\n") != len(self.rows) + 1:
            raise ValueError(f"{self.name}: a record spans several lines; token escaping failed")
        return text


def _read_umask() -> int:
    """The process umask, read without changing it where Linux allows (setting it is not thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def set_public_mode(path: Path, directory: bool = False) -> None:
    """Give a file made by mkstemp/mkdtemp (always 0600/0700) the mode the user's umask asks for."""
    path.chmod((0o777 if directory else 0o666) & ~_UMASK)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file via a temp file in the same directory and one rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        set_public_mode(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def sha256_text(text: str) -> str:
    """Hex sha256 of UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_model_dir(out: Path, probe_json: dict[str, Any], tables: Sequence[Table],
                    manifest_extra: dict[str, Any]) -> Path:
    """Write all artifacts of one model atomically: build in a temp dir, then swap it into place.

    A crash leaves either the old directory or the new one, never a mix.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        files: list[dict[str, Any]] = []
        text = dumps_json(probe_json)
        (tmp / "probe.json").write_text(text, encoding="utf-8")
        files.append({"path": "probe.json", "kind": "json", "sha256": sha256_text(text),
                      "bytes": len(text.encode()), "lines": text.count("\n")})
        for t in tables:
            text = t.render()
            (tmp / t.name).write_text(text, encoding="utf-8")
            files.append({"path": t.name, "kind": "csv", "sha256": sha256_text(text), "bytes": len(text.encode()),
                          "lines": text.count("\n"), "rows": len(t.rows), "key_columns": list(t.key_columns),
                          "columns": list(t.columns)})
        manifest = {"schema_version": SCHEMA_VERSION, **manifest_extra, "artifacts": files}
        (tmp / "manifest.json").write_text(dumps_json(manifest), encoding="utf-8")
        set_public_mode(tmp, directory=True)  # mkdtemp makes it 0700; the run dir is meant to be shared
        old = out.with_name(f".{out.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
