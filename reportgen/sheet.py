"""Facts the LLM fact sheet names that the artifacts do not hold directly (magnitudes, directions, thresholds).

`add_sheet_facts` runs inside `reportgen.structure.build_data`, before the derived-facts file is written, so every
fact added here is bound to a line of that file like any other derived fact. The drafting LLM never types a
number, so whatever a natural sentence needs must be a fact it can name by placeholder:

- a non-negative magnitude and a direction word next to every signed change (``falls by {…_size}`` instead of
  "falls by -2.62"), because a sentence states a direction in words and a size without sign;
- the thresholds that otherwise live only in fact names (``first_rank_le["5"]`` -> 5, ``first_kl_le["1p0"]`` ->
  1 bit, ``first_cos_ge["0p6"]`` -> 0.6), each derived from the milestone whose name holds it.
"""

from __future__ import annotations

from reportgen.facts import Fact, FactSet
from reportgen.structure import ReportData

# data.F name of a signed change -> the stem of the sheet facts added beside it
SIGNED_CHANGES = {"entropy_rise": "entropy_change_at_unembed", "entropy_change": "entropy_change_first_to_last"}
# data.F name of a milestone -> (sheet fact name of its threshold, value, unit)
THRESHOLDS = {
    "rank10": ("rank_threshold_10", 10, None), "rank5": ("rank_threshold_5", 5, None),
    "rank1": ("rank_threshold_1", 1, None),
    "kl1": ("kl_threshold_1", 1.0, "bits"), "kl05": ("kl_threshold_0_5", 0.5, "bits"),
    "cos02": ("cos_threshold_0_2", 0.2, None), "cos04": ("cos_threshold_0_4", 0.4, None),
    "cos06": ("cos_threshold_0_6", 0.6, None),
}


def direction_word(value: float | None) -> str | None:
    """The word a sentence uses for the sign of a change: rises, falls or unchanged (None for null)."""
    if value is None:
        return None
    return "rises" if value > 0 else "falls" if value < 0 else "unchanged"


def _add(facts: FactSet, data: ReportData, name: str, value: object, unit: str | None, source: Fact,
         formula: str) -> None:
    key = f"derived:{name}"
    if key not in facts:  # build_data may run twice over one FactSet (tests, refresh)
        facts.add_derived(key, value, unit, [source.key], formula)  # type: ignore[arg-type]
    data.F[name] = facts.get(key)


def add_sheet_facts(facts: FactSet, data: ReportData) -> None:
    """Add the derived facts the fact sheet needs to ``facts`` and name them in ``data.F``.

    Args:
        facts: The model's facts; the new ones are derived facts citing their source.
        data: The report data; ``data.F`` gains one entry per added fact, under its sheet name.

    """
    for f_name, stem in SIGNED_CHANGES.items():
        signed = data.F.get(f_name)
        if signed is None:
            continue
        data.F[stem] = signed
        value = signed.value if isinstance(signed.value, (int, float)) else None
        _add(facts, data, f"{stem}_size", None if value is None else abs(value), "bits", signed, f"abs({stem})")
        _add(facts, data, stem.replace("_change_", "_direction_"), direction_word(value), None, signed,
             f"'rises' if {stem} > 0 else 'falls' if {stem} < 0 else 'unchanged'")
    for f_name, (name, value, unit) in THRESHOLDS.items():
        milestone = data.F.get(f_name)
        if milestone is not None:
            _add(facts, data, name, value, unit, milestone, f"the threshold in the name of {milestone.key}")
