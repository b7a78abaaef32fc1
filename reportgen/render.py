"""Render report structures through Jinja2 templates (StrictUndefined: a missing variable is an error)."""

from __future__ import annotations

import hashlib
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2

import reportgen
from reportgen.errors import ReportError
from reportgen.facts import Fact
from reportgen.formatting import escape_md, fmt_bits, fmt_fact, fmt_layer, fmt_num, fmt_pct, fmt_prob, md_token

TEMPLATES_DIR = Path(str(files("templates")))


def citation(facts: tuple[Fact, ...] | list[Fact], prefix: str, derived: dict[str, str] | None = None) -> str:
    """'(prefix/file:line; prefix/file:line)' for the given facts, de-duplicated.

    A derived fact cites the line of its value in the derived-facts file (`derived` maps its key to that
    citation) and then every source it was computed from.
    """
    cites: dict[str, None] = {}
    for f in facts:
        if f.sources:
            if derived is None or f.key not in derived:
                raise ReportError(f"derived fact {f.key!r} has no line in the derived-facts file")
            cites[derived[f.key]] = None
        for c in (f.source_citations or (f.cite(),)):
            cites[f"{prefix}{c}"] = None
    return "(" + "; ".join(cites) + ")"


def fmt_exact(f: Fact | float) -> str:
    """A configured value exactly as written (0.5, 0.001, 10), for thresholds."""
    v = f.value if isinstance(f, Fact) else f
    return "n/a" if v is None else f"{v:g}"


def make_env(prefix: str, derived: dict[str, str] | None = None) -> jinja2.Environment:
    """A Jinja environment whose filters format numbers and cite facts under `prefix` (e.g. 'artifacts/m/')."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), undefined=jinja2.StrictUndefined,
                             autoescape=False, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update({
        "v": fmt_fact, "bits": fmt_bits, "prob": fmt_prob, "pct": fmt_pct, "layer": fmt_layer, "sig": fmt_num,
        "tok": md_token, "escape_md": escape_md, "exact": fmt_exact,
    })
    env.globals["cite"] = lambda *facts: citation([f for f in facts if f is not None], prefix, derived)
    env.globals["cite_in"] = lambda pfx, *facts: citation([f for f in facts if f is not None], pfx, derived)
    env.globals["version"] = reportgen.__version__
    return env


def render(template: str, prefix: str, derived: dict[str, str] | None = None, **context: Any) -> str:
    """Render one template.

    Raises:
        ReportError: a variable the template needs is missing, or the template is broken.
    """
    try:
        return make_env(prefix, derived).get_template(template).render(**context)
    except jinja2.UndefinedError as e:
        raise ReportError(f"templates/{template}: {e.message}") from e
    except jinja2.TemplateError as e:
        raise ReportError(f"templates/{template}: {e}") from e


def templates_hash() -> str:
    """sha256 over every template file (name and bytes), for staleness checks."""
    h = hashlib.sha256()
    for p in sorted(TEMPLATES_DIR.rglob("*.j2")):
        h.update(str(p.relative_to(TEMPLATES_DIR)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()
