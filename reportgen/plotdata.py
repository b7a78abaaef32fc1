"""Plot data: the matrices and series each report plot draws, read from a model's verified facts (no drawing).

Every value comes from a `reportgen.facts.FactSet` (artifacts whose sha256 the manifest vouches for), keyed the way
the report's tables are: the primary prompt (``prompt_set.primary``) in variant ``orig``. `reportgen.plots` draws
these records; tests compare them with the CSVs read independently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reportgen.csvtable import cell_key
from reportgen.errors import ReportError
from reportgen.facts import FactSet
from reportgen.structure import PURE, J

RECORDS = "records.csv"  # norm lens, every position of every prompt
VARIANT = "orig"  # the variant the report's tables use for the primary prompt
MAX_POSITIONS = 48  # a longer prompt shows its last positions (the next-token one included)

# Milestones of the cross-model chart: label -> probe.json path under headline.milestones.
MILESTONES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("copy layer", ("L_copy",)),
    ("rank \u2264 10", ("first_rank_le", "10")),
    ("rank \u2264 5", ("first_rank_le", "5")),
    ("semantic layer (rank 1)", ("L_semantic",)),
    ("KL to final \u2264 1 bit", ("first_kl_le", "1p0")),
)


def cell(table: str, column: str, **key: Any) -> str:
    """Fact key of one CSV cell: key cells in manifest order (quoted like `reportgen.csvtable` does), then the
    column."""
    return f"{table}[{','.join(f'{k}={cell_key(str(v))}' for k, v in key.items())}].{column}"


def _text(facts: FactSet, key: str) -> str:
    """A token cell as text: CsvTable types a column by its cells, so an all-digit token column comes back as a
    number and an empty cell as None."""
    v = facts.get(key).value
    return "" if v is None else str(v)


def _num(facts: FactSet, key: str) -> float | None:
    v = facts.get(key).value
    return None if v is None else float(v)


def primary_prompt(facts: FactSet) -> str:
    """The primary prompt id, as the report's tables use it."""
    return str(facts.get(J("prompt_set", "primary")).value)


@dataclass(frozen=True)
class Heatmap:
    """The top-1 token of one lens at every layer and position of one prompt.

    Attributes:
        prompt_id: The prompt (the primary prompt in reports).
        variant: Its variant (``orig`` in reports).
        lens: Lens name, for labels.
        layers: ``[n_rows]`` layer indices, 0 = embeddings.
        positions: ``[n_pos]`` token positions shown (the last ``MAX_POSITIONS`` of a longer prompt).
        input_tokens: ``[n_pos]`` the prompt's tokens at those positions.
        top1_tokens: ``[n_rows][n_pos]`` the lens's top-1 next token.
        top1_prob: ``[n_rows][n_pos]`` its probability.
        answer_at_last: ``[n_rows]`` whether the top-1 at the last position (the next-token one) is the gold answer
            (``is_answer`` of pure-next-token.csv).
        n_positions: Positions the prompt has in all.
    """

    prompt_id: str
    variant: str
    lens: str
    layers: list[int]
    positions: list[int]
    input_tokens: list[str]
    top1_tokens: list[list[str]]
    top1_prob: list[list[float]]
    answer_at_last: list[bool]
    n_positions: int

    def __post_init__(self) -> None:
        """Check that every matrix is ``[n_rows][n_pos]``."""
        n_rows, n_pos = len(self.layers), len(self.positions)
        shapes = {"input_tokens": (len(self.input_tokens),), "answer_at_last": (len(self.answer_at_last),),
                  "top1_tokens": (len(self.top1_tokens), *{len(r) for r in self.top1_tokens}),
                  "top1_prob": (len(self.top1_prob), *{len(r) for r in self.top1_prob})}
        want = {"input_tokens": (n_pos,), "answer_at_last": (n_rows,), "top1_tokens": (n_rows, n_pos),
                "top1_prob": (n_rows, n_pos)}
        if n_rows == 0 or n_pos == 0 or shapes != want:
            raise ReportError(f"heatmap of {self.prompt_id}/{self.variant}: shapes {shapes}, expected {want} for "
                              f"{n_rows} layers x {n_pos} positions")


def heatmap_data(facts: FactSet, table: str = RECORDS, lens: str = "norm",
                 max_positions: int = MAX_POSITIONS) -> Heatmap:
    """The logit-lens heatmap of the primary prompt: top-1 token and probability per layer and position.

    Args:
        facts: One model's facts (``extract_facts`` of its snapshot).
        table: The per-position table of the lens (``records.csv`` is the norm lens).
        lens: Its name, for labels.
        max_positions: Show at most this many positions, the last ones.

    Raises:
        ReportError: The table has no rows for the primary prompt at layer 0.
    """
    prompt = primary_prompt(facts)
    n_layers = int(facts.get(J("model", "n_layers")).value)  # type: ignore[arg-type]
    n_pos = 0
    while cell(table, "token", prompt_id=prompt, variant=VARIANT, layer=0, pos=n_pos) in facts:
        n_pos += 1
    if n_pos == 0:
        raise ReportError(f"{table}: no rows for prompt {prompt!r}, variant {VARIANT!r} at layer 0; re-run `probe run`")
    positions = list(range(max(0, n_pos - max_positions), n_pos))
    layers = list(range(n_layers + 1))

    def at(column: str, layer: int, pos: int) -> str:
        return cell(table, column, prompt_id=prompt, variant=VARIANT, layer=layer, pos=pos)

    return Heatmap(
        prompt, VARIANT, lens, layers, positions,
        input_tokens=[_text(facts, at("token", 0, p)) for p in positions],
        top1_tokens=[[_text(facts, at("top1_token", layer, p)) for p in positions] for layer in layers],
        top1_prob=[[_num(facts, at("top1_prob", layer, p)) or 0.0 for p in positions] for layer in layers],
        answer_at_last=[facts.get(cell(PURE, "is_answer", prompt_id=prompt, variant=VARIANT, layer=layer)).value
                        is True for layer in layers],
        n_positions=n_pos)


@dataclass(frozen=True)
class LensSeries:
    """One lens at the next-token position of the primary prompt, per layer.

    Attributes:
        lens: Lens name (``lenses.order`` of probe.json).
        table: The CSV it was read from.
        layers: ``[n_rows]`` layer indices.
        kl_bits: ``[n_rows]`` KL(final head || lens) in bits (``kl_to_final_bits``).
        answer_rank: ``[n_rows]`` rank of the gold answer (1 = top).
        entropy_bits: ``[n_rows]`` entropy of the lens distribution in bits.
        l_semantic: The lens's semantic layer (first rank 1), or None.
    """

    lens: str
    table: str
    layers: list[int]
    kl_bits: list[float | None]
    answer_rank: list[int | None]
    entropy_bits: list[float | None]
    l_semantic: int | None = None

    def __post_init__(self) -> None:
        """Check that the series are ``[n_rows]``."""
        lengths = {len(self.kl_bits), len(self.answer_rank), len(self.entropy_bits)}
        if lengths != {len(self.layers)}:
            raise ReportError(f"lens {self.lens!r} ({self.table}): series lengths {sorted(lengths)}, expected "
                              f"{len(self.layers)} layers")


def lens_series(facts: FactSet) -> list[LensSeries]:
    """KL to final, answer rank and entropy per layer for each lens of the run (``lenses.order``; the norm lens
    of pure-next-token.csv alone for artifacts written before lenses were data)."""
    prompt = primary_prompt(facts)
    n_layers = int(facts.get(J("model", "n_layers")).value)  # type: ignore[arg-type]
    lenses: list[tuple[str, str, int | None]] = []
    i = 0
    while J("lenses", "order", i) in facts:
        name = str(facts.get(J("lenses", "order", i)).value)
        base = ("lenses", "by_lens", name)
        sem = facts.get(J(*base, "milestones", "L_semantic")).value if J(*base, "milestones", "L_semantic") \
            in facts else None
        lenses.append((name, str(facts.get(J(*base, "table")).value), None if sem is None else int(sem)))
        i += 1
    if not lenses:
        sem = facts.get(J("headline", "milestones", "L_semantic")).value
        lenses = [("norm", PURE, None if sem is None else int(sem))]
    out = []
    for name, table, sem in lenses:
        layers = list(range(n_layers + 1))

        def at(column: str, layer: int, _table: str = table) -> str:
            return cell(_table, column, prompt_id=prompt, variant=VARIANT, layer=layer)

        ranks = [facts.get(at("answer_rank", layer)).value for layer in layers]
        out.append(LensSeries(name, table, layers, [_num(facts, at("kl_to_final_bits", layer)) for layer in layers],
                              [None if r is None else int(r) for r in ranks],  # type: ignore[arg-type]
                              [_num(facts, at("entropy_bits", layer)) for layer in layers], sem))
    return out


@dataclass(frozen=True)
class DepthSeries:
    """One model on the normalized-depth axis (layer / n_layers) of the cross-model chart.

    Attributes:
        alias: The model's report name (untrusted text).
        n_layers: Its number of blocks.
        depth: ``[n_layers + 1]`` layer / n_layers.
        answer_rank: ``[n_layers + 1]`` norm-lens answer rank of the primary prompt.
        milestones: label -> (layer, depth fraction), or None when never reached; labels of ``MILESTONES``.
    """

    alias: str
    n_layers: int
    depth: list[float]
    answer_rank: list[int | None]
    milestones: dict[str, tuple[int, float] | None] = field(default_factory=dict)


def depth_series(facts: FactSet, alias: str) -> DepthSeries:
    """Answer rank by normalized depth and the milestones at layer / n_layers for one model."""
    prompt = primary_prompt(facts)
    n = int(facts.get(J("model", "n_layers")).value)  # type: ignore[arg-type]
    if n <= 0:
        raise ReportError(f"probe.json: model.n_layers is {n}; a normalized depth needs at least one layer")
    ranks = [facts.get(cell(PURE, "answer_rank", prompt_id=prompt, variant=VARIANT, layer=layer)).value
             for layer in range(n + 1)]
    milestones: dict[str, tuple[int, float] | None] = {}
    for label, path in MILESTONES:
        key = J("headline", "milestones", *path)
        v = facts.get(key).value if key in facts else None
        milestones[label] = None if v is None else (int(v), int(v) / n)  # type: ignore[arg-type]
    return DepthSeries(alias, n, [layer / n for layer in range(n + 1)],
                       [None if r is None else int(r) for r in ranks], milestones)  # type: ignore[arg-type]
