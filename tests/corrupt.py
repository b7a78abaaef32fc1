"""Seeded single corruptions of a report that binds values as links: what a careless edit or a drifting rerun does.

Each corruption changes one bound value link of one report line; `corruptions` yields them all, by kind:

- ``number``: the last digit of a printed number changes (9 -> 8, else +1).
- ``swap``: the texts of two links on one line trade places (only when they state different values).
- ``shift``: the link's line anchor moves one line up or down.
- ``word``: a word value flips (yes/no, ✓/✗, rises/falls, high/low, none -> L 0, a string gets another word).
- ``token``: a quoted token gets one character more, or another token of the report.
- ``file``: the link points at another artifact of the snapshot, at the report itself or at a record.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

LINK = re.compile(r'\[(?P<text>(?:\\.|[^\]\\])*)\]\((?P<path>[^\s#)]+)#L(?P<line>\d+) "(?P<title>(?:\\.|[^"\\])*)"\)')
_FLIP = {"yes": "no", "no": "yes", "\u2713": "\u2717", "\u2717": "\u2713", "rises": "falls", "falls": "rises",
         "high": "low", "low": "high", "medium": "high", "none": "L 0", "n.a.": "\u2713", "true": "false",
         "false": "true", "unchanged": "rises"}
_OTHER_FILES = ("records.csv", "raw-vs-norm.csv", "probe.json", "pure-next-token.csv")


@dataclass(frozen=True)
class Corruption:
    """One corrupted copy: its kind, the report line (1-based) it touches, and the corrupted report text."""

    kind: str
    line: int
    before: str
    after: str
    text: str


_SAME = {"yes": True, "\u2713": True, "true": True, "no": False, "\u2717": False, "false": False, "none": None,
         "n/a": None, "n.a.": None}


def _meaning(text: str) -> object:
    """What a printed text says, so a swap of two equal values ('L 30' and '30', '✓' and 'yes') is no corruption."""
    if text in _SAME:
        return _SAME[text]
    bare = text.removeprefix("L ").removesuffix(" bits")
    try:
        return float(bare[:-1]) / 100 if bare.endswith("%") else float(bare)
    except ValueError:
        return text


def _bump_digit(text: str) -> str | None:
    digits = [m.start() for m in re.finditer(r"\d", text)]
    if not digits:
        return None
    i = digits[-1]
    # In scientific notation the last digit is the exponent's: change the mantissa's last digit instead.
    if "e" in text:
        mantissa = [d for d in digits if d < text.index("e")]
        i = mantissa[-1] if mantissa else i
    new = "8" if text[i] == "9" else str(int(text[i]) + 1)
    return text[:i] + new + text[i + 1:]


def _word(text: str, tokens: list[str]) -> str | None:
    if text in _FLIP:
        return _FLIP[text]
    if text.startswith("'"):
        return None  # tokens are the token kind
    if re.search(r"\d", text) or not text.strip():
        return None
    return text + "X" if len(text) < 40 else text[:-1]


def _token(text: str, tokens: list[str]) -> str | None:
    if not (text.startswith("'") and text.endswith("'") and len(text) >= 2):
        return None
    other = next((t for t in tokens if t != text), None)
    return other if other is not None else text[:-1] + "x'"


def corruptions(report: str, report_name: str) -> Iterator[Corruption]:
    """Every single corruption of every bound link of ``report`` (named ``report_name`` in its directory)."""
    lines = report.split("\n")
    tokens = sorted({m.group("text") for m in LINK.finditer(report) if m.group("text").startswith("'")})
    for index, line in enumerate(lines):
        matches = list(LINK.finditer(line))
        for k, m in enumerate(matches):
            text, path, at = m.group("text"), m.group("path"), int(m.group("line"))

            def with_link(new_text: str = text, new_path: str = path, new_line: int = at, _m: re.Match = m,
                          _line: str = line) -> str:
                link = f'[{new_text}]({new_path}#L{new_line} "{_m.group("title")}")'
                return _line[:_m.start()] + link + _line[_m.end():]

            candidates: list[tuple[str, str]] = []
            if (bumped := _bump_digit(text)) is not None and not text.startswith("'"):
                candidates.append(("number", with_link(new_text=bumped)))
            if (flipped := _word(text, tokens)) is not None:
                candidates.append(("word", with_link(new_text=flipped)))
            if (other := _token(text, tokens)) is not None:
                candidates.append(("token", with_link(new_text=other)))
            candidates.append(("shift", with_link(new_line=at + 1 if k % 2 == 0 else max(at - 1, 1))))
            folder, _, name = path.rpartition("/")
            other_file = next(f for f in _OTHER_FILES if f != name)
            target = f"{folder}/{other_file}" if path.startswith("artifacts/") and k % 3 else report_name
            if k % 3 == 2 and path.startswith("artifacts/"):
                target = report_name.replace(".md", ".validation.json")
            candidates.append(("file", with_link(new_path=target)))
            if k + 1 < len(matches) and _meaning(matches[k + 1].group("text")) != _meaning(text):
                n = matches[k + 1]
                swapped = (line[:m.start()] + f'[{n.group("text")}]' + line[m.start() + len(text) + 2:n.start()]
                           + f'[{text}]' + line[n.start() + len(n.group("text")) + 2:])
                candidates.append(("swap", swapped))
            for kind, new_line_text in candidates:
                if new_line_text != line:
                    out = lines[:index] + [new_line_text] + lines[index + 1:]
                    yield Corruption(kind, index + 1, line, new_line_text, "\n".join(out))
