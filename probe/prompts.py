"""Load and validate a prompt set (TOML) and align gold answers to token ids."""

from __future__ import annotations

import hashlib
import math
import re
import string
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import tomllib

from probe.errors import ProbeError

DEFAULT_PROMPTS = Path(str(files("probe").joinpath("prompts.toml")))


@dataclass(frozen=True)
class Fact:
    """One (country, answer) pair of the suite."""

    id: str
    country: str
    answer: str


@dataclass(frozen=True)
class PromptSet:
    """A validated prompt file."""

    name: str
    path: str
    sha256: str
    primary: str
    control: str
    templates: dict[str, str]
    facts: tuple[Fact, ...]
    test_prompts: tuple[str, ...]
    temperatures: tuple[float, ...]

    def fact(self, fact_id: str) -> Fact:
        """The fact with this id."""
        return next(f for f in self.facts if f.id == fact_id)

    def text(self, fact_id: str, variant: str) -> str:
        """The prompt text of a fact under a template variant."""
        return self.templates[variant].format(country=self.fact(fact_id).country)

    def role(self, fact_id: str) -> str:
        """Positive (the primary fact), control, or suite."""
        return "positive" if fact_id == self.primary else "control" if fact_id == self.control else "suite"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (for the probe artifact)."""
        return {
            "name": self.name, "file": Path(self.path).name, "sha256": self.sha256, "primary": self.primary,
            "control": self.control, "templates": dict(self.templates),
            "facts": [{"id": f.id, "country": f.country, "answer": f.answer} for f in self.facts],
            "test_prompts": list(self.test_prompts), "temperatures": list(self.temperatures),
        }


def _line_of(text: str, needle: str) -> int:
    """1-based line of the first occurrence of `needle` (best effort, for error messages)."""
    idx = text.find(needle)
    return text.count("\n", 0, idx) + 1 if idx >= 0 else 1


def _fact_line(text: str, index: int, key: str) -> str:
    """Line of `key` inside the index-th [[facts]] table (or of the table header)."""
    starts = [m.start() for m in re.finditer(r"^\[\[facts\]\]", text, re.M)]
    if index >= len(starts):
        return "[[facts]]"
    end = starts[index + 1] if index + 1 < len(starts) else len(text)
    m = re.search(rf"^\s*{re.escape(key)}\s*=", text[starts[index]:end], re.M)
    return text[starts[index] + (m.start() if m else 0):].split("\n", 1)[0]


def _fields(template: str) -> set[str]:
    """Replacement fields of a str.format template ({country}); a malformed one is reported as itself."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:
        return {template}


def _require(cond: bool, path: Path, text: str, needle: str, msg: str) -> None:
    if not cond:
        raise ProbeError(f"{path}:{_line_of(text, needle)}: {msg}")


def load_prompt_set(path: Path | None = None) -> PromptSet:
    """Parse and validate a prompt TOML file.

    Raises:
        ProbeError: with `file:line` and what was expected, on syntax errors or missing/invalid fields.
    """
    path = Path(path) if path else DEFAULT_PROMPTS
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ProbeError(f"{path}: cannot read prompt file ({e.strerror})") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ProbeError(f"{path}:{line}: byte {raw[e.start]:#04x} is not UTF-8 ({e.reason}); save the prompt file "
                         "as UTF-8 (TOML files are UTF-8 by definition)") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # Python < 3.14 only puts the position in the message: "... (at line 3, column 7)".
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        line = m.group(1) if m else "?"
        raise ProbeError(f"{path}:{line}: invalid TOML: {str(e).split(' (at line')[0]}") from e
    known = {"name", "version", "primary", "control", "templates", "facts", "test_prompts", "temperatures"}
    for key in data:
        _require(key in known, path, text, key, f"unknown key {key!r}; expected one of {sorted(known)}")
    for key in ("name", "primary", "control", "templates", "facts"):
        _require(key in data, path, text, "", f"missing required key {key!r}")
    for key in ("name", "primary", "control"):
        _require(isinstance(data[key], str), path, text, f"{key} =",
                 f"{key} must be a string, found {type(data[key]).__name__}")
    templates = data["templates"]
    _require(isinstance(templates, dict) and "orig" in templates, path, text, "[templates]",
             "[templates] must define at least `orig`")
    for name, tpl in templates.items():
        _require(isinstance(tpl, str) and "{country}" in tpl, path, text, name,
                 f"template {name!r} must be a string containing {{country}}")
        _require(_fields(tpl) == {"country"}, path, text, name,
                 f"template {name!r} may use only {{country}}, found {sorted(_fields(tpl) - {'country'})} "
                 "(write {{ and }} for literal braces)")
    _require(isinstance(data["facts"], list) and bool(data["facts"])
             and all(isinstance(f, dict) for f in data["facts"]), path, text, "facts",
             "facts must be a non-empty array of [[facts]] tables with id, country, answer")
    facts = []
    for i, f in enumerate(data["facts"]):
        for key in f:
            _require(key in {"id", "country", "answer"}, path, text, _fact_line(text, i, key),
                     f"[[facts]] entry {i + 1}: unknown key {key!r}; expected id, country, answer")
        for key in ("id", "country", "answer"):
            _require(isinstance(f.get(key), str) and f[key].strip() != "", path, text,
                     _fact_line(text, i, key), f"[[facts]] entry {i + 1} needs a non-empty string {key!r}")
        facts.append(Fact(f["id"], f["country"], f["answer"]))
    ids = [f.id for f in facts]
    _require(len(set(ids)) == len(ids), path, text, "[[facts]]", f"fact ids must be unique, got {ids}")
    for role in ("primary", "control"):
        _require(data[role] in ids, path, text, f"{role} =", f"{role} = {data[role]!r} is not a fact id {ids}")
    for table, field in (("test_prompts", "texts"), ("temperatures", "values")):
        _require(isinstance(data.get(table, {}), dict) and isinstance(data.get(table, {}).get(field, []), list),
                 path, text, table, f"{table} must be a table with a list `{field}`")
    tests = data.get("test_prompts", {}).get("texts", [])
    _require(all(isinstance(t, str) and t for t in tests), path, text, "test_prompts",
             "test_prompts.texts must be a list of non-empty strings")
    temps = data.get("temperatures", {}).get("values", [])
    _require(all(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t > 0
                 for t in temps), path, text, "temperatures",
             "temperatures.values must be finite positive numbers")
    return PromptSet(
        name=str(data["name"]), path=str(path), sha256=hashlib.sha256(raw).hexdigest(),
        primary=data["primary"], control=data["control"], templates=dict(templates), facts=tuple(facts),
        test_prompts=tuple(tests), temperatures=tuple(float(t) for t in temps),
    )


@dataclass(frozen=True)
class GoldAnswer:
    """The answer aligned to token ids: the first id is what rank/probability metrics score."""

    string: str
    variant: str  # "with_space" | "no_space"
    first_id: int
    ids: tuple[int, ...]
    pieces: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"string": self.string, "variant": self.variant, "first_id": self.first_id,
                "ids": list(self.ids), "pieces": list(self.pieces), "n_pieces": len(self.ids)}


def align_gold(tokenizer: Any, prompt: str, answer: str) -> GoldAnswer:
    """Find the answer's token ids as the model would produce them after `prompt`.

    Tokenizes prompt+answer against prompt alone and takes the new ids (with a leading space unless the prompt
    ends in whitespace), so BPE merges across the boundary are seen as the model sees them.

    Raises:
        ProbeError: when the answer adds no tokens or changes the prompt's own tokenization.
    """
    base = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    variant, cont = ("no_space", answer) if prompt[-1:].isspace() else ("with_space", " " + answer)
    full = tokenizer(prompt + cont, add_special_tokens=True)["input_ids"]
    if full[: len(base)] != base or len(full) == len(base):
        # Boundary merge: fall back to tokenizing the continuation alone.
        new = tokenizer(cont, add_special_tokens=False)["input_ids"]
    else:
        new = full[len(base):]
    if not new:
        raise ProbeError(f"answer {answer!r} produced no tokens after prompt {prompt!r}")
    pieces = tuple(tokenizer.decode([i]) for i in new)
    return GoldAnswer(answer, variant, int(new[0]), tuple(int(i) for i in new), pieces)
