"""Render report structures through Jinja2 templates (StrictUndefined: a missing variable is an error)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2

import reportgen
from reportgen.bound import Binding, link
from reportgen.errors import ReportError
from reportgen.facts import Fact
from reportgen.formatting import escape_md, fmt_bits, fmt_fact, fmt_layer, fmt_num, fmt_pct, fmt_prob, md_token

if TYPE_CHECKING:  # interpret builds on structure; rendering needs only the record's shape
    from reportgen.interpret import Finding

TEMPLATES_DIR = Path(str(files("templates")))


def binding_for(f: Fact, prefix: str, derived: dict[str, Binding] | None = None) -> Binding:
    """The artifact line a fact's printed value is bound to: its own line, or its line in the derived-facts file.

    Raises:
        ReportError: A derived fact that has no line in the derived-facts file.
    """
    if f.sources:
        if derived is None or f.key not in derived:
            raise ReportError(f"derived fact {f.key!r} has no line in the derived-facts file")
        return derived[f.key]
    # probe.json:headline.x -> headline.x; pure-next-token.csv[k=v].col -> [k=v].col
    key = f.key[len(f.file):].removeprefix(":")
    return Binding(f"{prefix}{f.file}", f.line, key)


def citation(facts: tuple[Fact, ...] | list[Fact], prefix: str, derived: dict[str, Binding] | None = None) -> str:
    """'(prefix/file:line; …)' for the given facts, de-duplicated (the LLM fact sheet shows where facts live)."""
    cites = dict.fromkeys(f"{b.path}:{b.line}" for b in (binding_for(f, prefix, derived) for f in facts))
    return "(" + "; ".join(cites) + ")"


def fmt_exact(f: Fact | float) -> str:
    """A configured value exactly as written (0.5, 0.001, 10), for thresholds."""
    v = f.value if isinstance(f, Fact) else f
    return "n/a" if v is None else f"{v:g}"


def fmt_verdict(f: Fact) -> str:
    """A checklist verdict fact (true, false, null) as ✓, ✗ or n.a."""
    return {True: "\u2713", False: "\u2717"}.get(f.value, "n.a.")  # type: ignore[arg-type]


def fmt_direction(f: Fact) -> str:
    """A signed change as the word a sentence needs: rises, falls or stays flat."""
    v = f.value
    return "n/a" if v is None else "rises" if v > 0 else "falls" if v < 0 else "unchanged"


FORMATS: dict[str, Callable[..., str]] = {
    "v": fmt_fact, "bits": fmt_bits, "prob": fmt_prob, "pct": fmt_pct, "layer": fmt_layer, "sig": fmt_num,
    "tok": md_token, "exact": fmt_exact, "verdict": fmt_verdict, "direction": fmt_direction,
}


def bound_value(f: Fact, fmt: str, prefix: str, derived: dict[str, Binding] | None = None) -> str:
    """A fact printed with the named format and bound to its line as a markdown link."""
    return link(FORMATS[fmt](f), binding_for(f, prefix, derived))


def join_words(parts: list[str], sep: str = ", ") -> str:
    """'a', 'a and b', 'a, b and c' (``sep`` between the others): how a sentence lists bound values."""
    if len(parts) <= 1:
        return "".join(parts)
    return sep.join(parts[:-1]) + " and " + parts[-1]


def fill_finding(finding: Finding, show: Callable[[Fact, str], str]) -> str:
    """An interpretation finding's sentence (`reportgen.interpret.Finding`) with each value printed by ``show``.

    ``{name:fmt}`` prints one fact, or a list of facts joined (`join_words`); ``{name:item}`` prints each record of
    a list with the rule's ``items`` template, joined with semicolons.

    Raises:
        ReportError: A slot names a value the finding does not hold.
    """
    from reportgen.interpret import SLOT  # late: interpret builds on structure, which plain rendering never needs

    def fill(template: str, values: dict[str, Any]) -> str:
        def one(match: Any) -> str:
            name, fmt = match.group(1), match.group(2) or "v"
            if name not in values:
                raise ReportError(f"{finding.rule.origin}: the sentence names {{{name}}}, which it has no value for")
            value = values[name]
            if fmt == "item":
                return join_words([fill(finding.rule.items[name], item) for item in value], "; ")
            if isinstance(value, list):
                return join_words([show(f, fmt) for f in value])
            return show(value, fmt)
        return SLOT.sub(one, template)

    return fill(finding.text, finding.values)


def render_finding(finding: Finding, prefix: str, derived: dict[str, Binding] | None = None) -> str:
    """A finding's sentence with every value a link bound to its artifact (or derived-facts) line."""
    return fill_finding(finding, lambda f, fmt: bound_value(f, fmt, prefix, derived))


def make_env(prefix: str, derived: dict[str, Binding] | None = None) -> jinja2.Environment:
    """A Jinja environment whose filters print a fact as a link bound to its artifact line under `prefix`."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), undefined=jinja2.StrictUndefined,
                             autoescape=False, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)

    def bound(fmt: str) -> Callable[[Any], str]:
        def apply(f: Any) -> str:
            if not isinstance(f, Fact):
                raise ReportError(f"filter {fmt!r} needs a fact (to bind its value to a line), got {f!r}")
            return bound_value(f, fmt, prefix, derived)
        return apply

    env.filters.update({name: bound(name) for name in FORMATS})
    env.filters["finding"] = lambda f: render_finding(f, prefix, derived)
    env.filters["as"] = lambda f, fmt: bound(fmt)(f)  # a format chosen by data (a detail table's column)
    env.filters["escape_md"] = escape_md
    env.filters["url"] = lambda path: quote(str(path), safe="/._-~")  # a link destination for any file name
    env.globals["version"] = reportgen.__version__
    return env


def render(template: str, prefix: str, derived: dict[str, Binding] | None = None, **context: Any) -> str:
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
    """sha256 over every template file (name and bytes) and the interpretation rules, for staleness checks: the
    rules' sentences are templates of the report too."""
    h = hashlib.sha256()
    for p in sorted(TEMPLATES_DIR.rglob("*.j2")):
        h.update(str(p.relative_to(TEMPLATES_DIR)).encode())
        h.update(p.read_bytes())
    findings = Path(str(files("reportgen").joinpath("interpret.toml")))
    h.update(b"interpret.toml")
    h.update(findings.read_bytes())
    return h.hexdigest()
