"""Facts the LLM fact sheet names that the artifacts do not hold directly (magnitudes, directions, thresholds).

`add_sheet_facts` runs inside `reportgen.structure.build_data`, before the derived-facts file is written, so every
fact added here is bound to a line of that file like any other derived fact.
"""

from __future__ import annotations

from reportgen.facts import FactSet
from reportgen.structure import ReportData


def add_sheet_facts(facts: FactSet, data: ReportData) -> None:
    """Add the derived facts the fact sheet needs to ``facts`` and name them in ``data.F``."""
    return None
