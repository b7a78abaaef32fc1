"""The checklist's rule engine: rules are data (TOML), verdicts are records with the facts that decided them."""

from __future__ import annotations

import ast
import enum
import hashlib
import operator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import tomllib

from reportgen.errors import ReportError
from reportgen.facts import Fact, FactSet

DEFAULT_RULES = Path(str(files("reportgen").joinpath("rules.toml")))


class Verdict(enum.Enum):
    """Outcome of one checklist item."""

    PASS = "✓"
    """The check expression is true."""
    FAIL = "✗"
    """The check expression is false."""
    NA = "n.a."
    """The `na` expression is true: the item does not apply to this model."""


@dataclass(frozen=True)
class Rule:
    """One checklist item as loaded from a rules file."""

    id: str
    title: str
    uses: dict[str, str]
    check: str
    na: str | None
    origin: str  # "file:line" where the rule was defined, for error messages


@dataclass(frozen=True)
class CheckResult:
    """A verdict and the facts (with citations) that decided it."""

    rule: Rule
    verdict: Verdict
    evidence: tuple[tuple[str, Fact], ...]  # (local name, fact)


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_CMPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
         ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
         ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}
_FUNCS = {"abs": abs, "min": min, "max": max}
_CONSTS = {"true": True, "false": False, "True": True, "False": False, "None": None, "null": None}


def _eval(node: ast.AST, env: dict[str, Any], where: str) -> Any:
    """Evaluate a whitelisted expression tree; anything else is an error naming the rule."""
    if isinstance(node, ast.Expression):
        return _eval(node.body, env, where)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        if node.id in _CONSTS:
            return _CONSTS[node.id]
        raise ReportError(f"{where}: unknown name {node.id!r}; declare it in `uses`")
    if isinstance(node, ast.BoolOp):
        vals = (_eval(v, env, where) for v in node.values)
        return all(vals) if isinstance(node.op, ast.And) else any(vals)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        v = _eval(node.operand, env, where)
        return (not v) if isinstance(node.op, ast.Not) else -v
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_eval(node.left, env, where), _eval(node.right, env, where))
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env, where)
        for op, comp in zip(node.ops, node.comparators):
            right = _eval(comp, env, where)
            if type(op) not in _CMPS:
                raise ReportError(f"{where}: operator {type(op).__name__} is not allowed")
            if not _CMPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [_eval(e, env, where) for e in node.elts]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS:
        return _FUNCS[node.func.id](*(_eval(a, env, where) for a in node.args))
    raise ReportError(f"{where}: expression element {type(node).__name__} is not allowed in rules")


def _parse(expr: str, where: str) -> ast.Expression:
    try:
        return ast.parse(expr, mode="eval")
    except SyntaxError as e:
        raise ReportError(f"{where}: invalid expression {expr!r}: {e.msg}") from e


def load_rules(paths: list[Path] | None = None) -> list[Rule]:
    """Load the built-in rules, then each user file in order; a rule with an existing id replaces it."""
    rules: dict[str, Rule] = {}
    for path in [DEFAULT_RULES, *(paths or [])]:
        for rule in _load_file(Path(path)):
            rules[rule.id] = rule
    return list(rules.values())


def toml_entries(path: Path, table: str, what: str, noun: str) -> list[tuple[dict[str, Any], str]]:
    """The entries of the array of tables ``table`` in a TOML file, each with where it is (``path:line noun 'id'``,
    the line of its id, for error messages); ``what`` names the file in read errors.

    Raises:
        ReportError: The file cannot be read or is not valid TOML.
    """
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except OSError as e:
        raise ReportError(f"{path}: cannot read {what} ({e.strerror})") from e
    except tomllib.TOMLDecodeError as e:
        raise ReportError(f"{path}: invalid TOML: {e}") from e
    lines, out = text.splitlines(), []
    for i, raw in enumerate(data.get(table, [])):
        rid = raw.get("id", f"#{i + 1}")
        line = next((n for n, ln in enumerate(lines, 1) if f'"{rid}"' in ln), 0)
        out.append((raw, f"{path}:{line} {noun} {rid!r}"))
    return out


def _load_file(path: Path) -> list[Rule]:
    out = []
    for raw, where in toml_entries(path, "rules", "rules file", "rule"):
        unknown = set(raw) - {"id", "title", "uses", "check", "na"}
        if unknown:
            raise ReportError(f"{where}: unknown fields {sorted(unknown)}; expected id, title, uses, check, na")
        for field in ("id", "title", "check"):
            if not isinstance(raw.get(field), str):
                raise ReportError(f"{where}: `{field}` must be a string")
        uses = raw.get("uses", {})
        if not isinstance(uses, dict) or not all(isinstance(v, str) for v in uses.values()):
            raise ReportError(f"{where}: `uses` must map names to fact keys")
        rule = Rule(raw["id"], raw["title"], dict(uses), raw["check"], raw.get("na"), where)
        _parse(rule.check, where)
        if rule.na:
            _parse(rule.na, where)
        out.append(rule)
    return out


def evaluate(rules: list[Rule], facts: FactSet) -> list[CheckResult]:
    """Evaluate every rule against the facts of one model.

    Raises:
        ReportError: a rule names a fact key the run does not have, or its expression fails.
    """
    results = []
    for rule in rules:
        evidence = []
        for name, key in rule.uses.items():
            if key not in facts:
                raise ReportError(f"{rule.origin}: unknown fact key {key!r} (for {name!r})")
            evidence.append((name, facts.get(key)))
        env = {name: fact.value for name, fact in evidence}
        try:
            if rule.na and _eval(_parse(rule.na, rule.origin), env, rule.origin):
                verdict = Verdict.NA
            else:
                verdict = Verdict.PASS if _eval(_parse(rule.check, rule.origin), env, rule.origin) else Verdict.FAIL
        except TypeError as e:
            raise ReportError(f"{rule.origin}: cannot evaluate with {env}: {e}") from e
        results.append(CheckResult(rule, verdict, tuple(evidence)))
    return results


def rules_hash(paths: list[Path] | None = None) -> str:
    """sha256 over the rule files' bytes (built-in first), for staleness checks."""
    h = hashlib.sha256()
    for p in [DEFAULT_RULES, *(paths or [])]:
        h.update(Path(p).read_bytes())
    return h.hexdigest()
