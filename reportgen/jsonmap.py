r"""Parse JSON text into a map from every node's path to its value and its 1-based start and end lines.

``json.loads`` forgets where values came from; citing ``probe.json:12`` needs the line. This module is a
recursive-descent parser over the text: the grammar (objects, arrays, members, commas) is walked by hand, and
compiled patterns only match single lexemes at the cursor (whitespace runs, numbers, plain string chunks),
as CPython's own ``json.scanner`` does. Values equal those of ``json.loads`` on every input it accepts,
including the non-standard ``NaN``/``Infinity``/``-Infinity`` that ``json.dumps`` writes for non-finite
floats. A leading byte-order mark is skipped (``json.loads`` rejects it; editors hide it).

Lines are counted after universal-newline normalisation (``\r\n`` and a lone ``\r`` end a line, like
``open()`` in text mode and every editor); columns in errors are 1-based code points.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, Union

from reportgen.errors import ReportError

JsonPath = tuple[Union[str, int], ...]
"""Keys (objects) and indices (arrays) from the root to a node; ``()`` is the root."""

# Three frames per level (value -> container -> value); 200 levels stays far below Python's recursion limit.
MAX_DEPTH = 200

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
# A run of string characters needing no decoding: stops at the closing quote, a backslash or a control char.
_CHUNK = re.compile(r'[^"\\\x00-\x1f]*')
# Sets, not str.isdigit: that accepts non-ASCII digits, and "" is "in" every string.
_DIGITS = frozenset("0123456789")
_NUMBER_START = _DIGITS | {"-"}
BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
"""Keys written bare in a path; any other key is written as a JSON string (``format_path``)."""
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_LITERALS: dict[str, Any] = {
    "true": True, "false": False, "null": None,
    # json.dumps writes these for non-finite floats, and json.loads accepts them; so must we.
    "NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf"),
}


@dataclass(frozen=True)
class JsonNode:
    """One JSON value and where it sits in the text.

    Attributes:
        path: Keys and indices from the root; ``()`` for the root value.
        value: The decoded value, as ``json.loads`` returns it (containers are shared with their parent).
        line: 1-based line of the value's first character.
        end_line: 1-based line of its last character; equals ``line`` for scalars, which cannot span lines.
        column: 1-based column (code points) of the value's first character.

    """

    path: JsonPath
    value: Any
    line: int
    end_line: int
    column: int

    @property
    def is_container(self) -> bool:
        """Whether the node is an object or an array."""
        return isinstance(self.value, (dict, list))


@dataclass(frozen=True)
class JsonMap:
    """A parsed document: the decoded value and every node in document (pre-)order."""

    value: Any
    nodes: tuple[JsonNode, ...]

    def leaves(self) -> Iterator[JsonNode]:
        """Yield the scalar nodes (strings, numbers, booleans, null) in document order."""
        return (node for node in self.nodes if not node.is_container)

    def node(self, path: JsonPath) -> JsonNode:
        """Return the node at ``path``.

        Raises:
            ReportError: No node has that path.

        """
        for candidate in self.nodes:
            if candidate.path == path:
                return candidate
        raise ReportError(f"no JSON node at {format_path(path)}")


def format_path(path: JsonPath) -> str:
    """Render a path as ``a.b[0].c``; keys that are not plain names become ``["json string"]``, root is ``$``.

    Args:
        path: Keys and indices from the root.

    Returns:
        The dotted path; distinct paths always render distinctly, because any key that could be mistaken for
        syntax (dots, brackets, spaces, a leading digit, the empty key) is quoted.

    """
    if not path:
        return "$"
    parts: list[str] = []
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            quoted = quote_name(part)
            parts.append(f"[{quoted}]" if quoted != part else f".{part}" if parts else part)
    return "".join(parts)


def quote_name(name: str) -> str:
    """Return a key as written in paths: bare if it matches ``BARE_NAME``, else as a JSON string."""
    return name if BARE_NAME.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def parse_json_map(text: str, source: str = "<string>") -> JsonMap:
    """Parse JSON text, recording every node's path, value and line range.

    Args:
        text: The whole document. A leading byte-order mark is skipped.
        source: Name used in error messages, e.g. ``probe.json``.

    Returns:
        The decoded value and all nodes in document order.

    Raises:
        ReportError: The text is not JSON; the message gives ``source:line:column``, what was expected and
            what was found. Also raised for duplicate keys in one object, which would make a path ambiguous.

    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith("\ufeff"):
        text = " " + text[1:]  # keep columns of the first line honest
    return _Parser(text, source).parse()


class _Parser:
    """Recursive descent over ``text``; ``pos`` is the cursor, ``nodes`` fills in document order."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.pos = 0
        self.nodes: list[JsonNode | None] = []
        # Offsets of every newline: the line of offset p is the count of newlines before p, plus one.
        self.newlines = [m.start() for m in re.finditer("\n", text)]

    def parse(self) -> JsonMap:
        self._skip_ws()
        value = self._value((), 0)
        self._skip_ws()
        if self.pos != len(self.text):
            self._fail("expected end of document after the top-level value")
        nodes = tuple(node for node in self.nodes if node is not None)
        return JsonMap(value=value, nodes=nodes)

    # -- positions and errors -------------------------------------------------------------------------
    def _line(self, pos: int) -> int:
        return bisect.bisect_left(self.newlines, pos) + 1

    def _column(self, pos: int) -> int:
        index = bisect.bisect_left(self.newlines, pos)
        line_start = self.newlines[index - 1] + 1 if index else 0
        return pos - line_start + 1

    def _fail(self, expected: str, pos: int | None = None) -> NoReturn:
        pos = self.pos if pos is None else pos
        found = repr(self.text[pos]) if pos < len(self.text) else "end of file"
        raise ReportError(
            f"{self.source}:{self._line(pos)}:{self._column(pos)}: invalid JSON: {expected}, found {found}"
        )

    def _skip_ws(self) -> None:
        self.pos = _WS.match(self.text, self.pos).end()

    # -- grammar --------------------------------------------------------------------------------------
    def _value(self, path: JsonPath, depth: int) -> Any:
        if depth > MAX_DEPTH:
            self._fail(f"nesting at most {MAX_DEPTH} levels deep")
        start = self.pos
        char = self.text[start] if start < len(self.text) else ""
        if char == "{":
            return self._container(path, depth, self._object_body)
        if char == "[":
            return self._container(path, depth, self._array_body)
        if char == '"':
            value: Any = self._string()
        elif char in _NUMBER_START:
            value = self._number()
        else:
            value = self._literal()
        line = self._line(start)
        self.nodes.append(JsonNode(path, value, line, line, self._column(start)))
        return value

    def _container(self, path: JsonPath, depth: int, body: Callable[[JsonPath, int], Any]) -> Any:
        # Reserve the slot first so the container precedes its children (document order), then fill it
        # once the closing bracket has given us the end line.
        start, slot = self.pos, len(self.nodes)
        self.nodes.append(None)
        self.pos += 1
        value = body(path, depth)
        end_line = self._line(self.pos - 1)
        self.nodes[slot] = JsonNode(path, value, self._line(start), end_line, self._column(start))
        return value

    def _object_body(self, path: JsonPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        key_lines: dict[str, int] = {}
        self._skip_ws()
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return result
        while True:
            self._skip_ws()
            key_pos = self.pos
            if not self.text.startswith('"', key_pos):
                self._fail("expected a string key in double quotes")
            key = self._string()
            if key in key_lines:
                raise ReportError(
                    f"{self.source}:{self._line(key_pos)}:{self._column(key_pos)}: duplicate key {key!r} in "
                    f"one object (first at line {key_lines[key]}); a path must name one value, so rename one"
                )
            key_lines[key] = self._line(key_pos)
            self._skip_ws()
            if not self.text.startswith(":", self.pos):
                self._fail("expected ':' after the object key")
            self.pos += 1
            self._skip_ws()
            result[key] = self._value((*path, key), depth + 1)
            if self._separator("}", "object member"):
                return result

    def _array_body(self, path: JsonPath, depth: int) -> list[Any]:
        result: list[Any] = []
        self._skip_ws()
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return result
        while True:
            self._skip_ws()
            result.append(self._value((*path, len(result)), depth + 1))
            if self._separator("]", "array element"):
                return result

    def _separator(self, closer: str, what: str) -> bool:
        """Consume ',' (more to come: False) or the closer (done: True) after a member."""
        self._skip_ws()
        char = self.text[self.pos : self.pos + 1]
        if char == "," or char == closer:
            self.pos += 1
            return char == closer
        self._fail(f"expected ',' or '{closer}' after {what}")

    # -- lexemes --------------------------------------------------------------------------------------
    def _string(self) -> str:
        """Decode the string opening at the cursor; leave the cursor after its closing quote."""
        text, start = self.text, self.pos
        self.pos += 1
        pieces: list[str] = []
        while True:
            end = _CHUNK.match(text, self.pos).end()
            pieces.append(text[self.pos : end])
            self.pos = end
            char = text[end : end + 1]
            if char == '"':
                self.pos += 1
                return "".join(pieces)
            if char == "\\":
                pieces.append(self._escape())
            elif char == "":
                self._fail(f"expected '\"' to close the string opened at column {self._column(start)}")
            else:
                self._fail("expected an escaped control character (raw ones are not allowed in strings)")

    def _escape(self) -> str:
        r"""Decode one backslash escape at the cursor; an escaped \uD8xx\uDCxx surrogate pair is one char."""
        text = self.text
        letter = text[self.pos + 1 : self.pos + 2]
        if letter in _ESCAPES:
            self.pos += 2
            return _ESCAPES[letter]
        if letter != "u":
            self._fail('expected an escape: \\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX', self.pos + 1)
        high = self._hex4(self.pos + 2)
        self.pos += 6
        # A high surrogate followed by an escaped low one is a single astral character; json.loads keeps a
        # lone surrogate as-is, and so do we.
        if 0xD800 <= high <= 0xDBFF and text.startswith("\\u", self.pos):
            low = self._hex4(self.pos + 2)
            if 0xDC00 <= low <= 0xDFFF:
                self.pos += 6
                return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
        return chr(high)

    def _hex4(self, pos: int) -> int:
        digits = self.text[pos : pos + 4]
        if len(digits) != 4 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            self._fail("expected 4 hex digits after \\u", pos)
        return int(digits, 16)

    def _number(self) -> int | float:
        if self.text.startswith("-Infinity", self.pos):
            return self._literal()
        match = _NUMBER.match(self.text, self.pos)
        if match is None:
            self._fail("expected a digit after '-'", self.pos + 1)
        self.pos = match.end()
        after = self.text[self.pos : self.pos + 1]
        if after in _DIGITS:
            self._fail("expected no leading zeros in a number")
        if after and after in ".eE":
            self._fail(f"expected a digit after {after!r} in a number", self.pos + 1)
        is_float = match.group(1) is not None or match.group(2) is not None
        return float(match.group()) if is_float else int(match.group())

    def _literal(self) -> Any:
        for word, value in _LITERALS.items():
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return value
        self._fail("expected a JSON value (object, array, string, number, true, false or null)")
