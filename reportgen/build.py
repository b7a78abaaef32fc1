"""Build reports: snapshot a run's artifacts beside the reports, extract facts, check, render, record."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import reportgen
from reportgen.errors import ReportError
from reportgen.facts import FactSet, extract_facts
from reportgen.render import render, templates_hash
from reportgen.rules import evaluate, load_rules, rules_hash
from reportgen.structure import J, ReportData, build_data

NARRATIVE_SECTIONS = ("overview", "qualitative", "limitations", "fingerprint")
ARTIFACTS = "artifacts"


@dataclass
class BuildOutcome:
    """What happened to one model's report."""

    model: str
    report: Path | None = None
    error: str | None = None
    narrative_source: str = "deterministic"
    llm: dict[str, Any] = field(default_factory=dict)


def atomic_write(path: Path, text: str) -> None:
    """Write via a temp file in the same directory and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def model_dirs(run_dir: Path) -> list[Path]:
    """Model directories of a run (those with a manifest), sorted by name."""
    if (run_dir / "manifest.json").is_file():
        return [run_dir]
    dirs = sorted(p for p in run_dir.iterdir() if p.is_dir() and (p / "manifest.json").is_file()) \
        if run_dir.is_dir() else []
    if not dirs:
        raise ReportError(f"{run_dir}: no model directories with a manifest.json (expected RUN/<model>/manifest.json)")
    return dirs


def snapshot(src: Path, dest: Path) -> None:
    """Copy a model's artifacts to dest atomically (temp dir + rename), so cited files travel with reports."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    try:
        for p in sorted(src.iterdir()):
            if p.is_file():
                shutil.copyfile(p, tmp / p.name)
        old = dest.with_name(f".{dest.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if dest.exists():
            os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def artifact_hashes(model_dir: Path) -> dict[str, str]:
    """sha256 of every file of a model's artifact directory (manifest included)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(model_dir.iterdir()) if p.is_file()}


def write_derived(facts: FactSet, out: Path, alias: str) -> dict[str, str]:
    """Write the derived facts of one model to OUT/derived/<alias>.json (one scalar per line) and return each
    derived key's citation of its value line, so a derived number is auditable like any artifact number."""
    from reportgen.jsonmap import parse_json_map

    derived = [f for f in facts if f.sources]
    doc = {f.key.split(":", 1)[1]: {"value": f.value, "unit": f.unit, "formula": f.formula,
                                    "sources": list(f.sources)} for f in derived}
    text = json.dumps(doc, indent=2, ensure_ascii=True) + "\n"
    rel = f"derived/{alias}.json"
    atomic_write(out / rel, text)
    jm = parse_json_map(text, rel)
    return {f.key: f"{rel}:{jm.node((f.key.split(':', 1)[1], 'value')).line}" for f in derived}


def deterministic_narrative(data: ReportData, prefix: str, derived: dict[str, str]) -> dict[str, str]:
    """The narrative sections written from templates alone (no LLM)."""
    return {s: render(f"narrative/{s}.md.j2", prefix, derived, d=data).strip() for s in NARRATIVE_SECTIONS}


def milestone_rows(facts: FactSet) -> list[dict[str, Any]]:
    """Threshold milestones with the threshold fact from the probe config, so both numbers are cited."""
    rows = []
    for label, cfg_key, m_key, fmt in (
        ("First layer with answer rank at most", "rank_thresholds", "first_rank_le", lambda t: str(int(t))),
        ("First layer with KL to final (bits) at most", "kl_thresholds_bits", "first_kl_le", None),
        ("First layer with cosine to the final logits at least", "cos_thresholds", "first_cos_ge", None),
        ("First layer with top-token probability at least", "p_top1_thresholds", "first_p_top1_ge", None),
    ):
        i = 0
        while J("config", cfg_key, i) in facts:
            t = facts.get(J("config", cfg_key, i))
            key = fmt(t.value) if fmt else f"{t.value:g}".replace(".", "p") if not float(t.value).is_integer() \
                else f"{t.value:g}p0"
            mk = J("headline", "milestones", m_key, key)
            if mk in facts:
                rows.append({"label": label, "threshold": t, "layer": facts.get(mk)})
            i += 1
    return rows


def build_model_report(model_dir: Path, out: Path, rule_files: list[Path] | None = None,
                       narrator: Any = None) -> BuildOutcome:
    """Snapshot, extract, check, render and record one model's report under `out`.

    Args:
        narrator: optional callable(data, facts, checks, prefix, deterministic) -> (sections, source, llm_info);
            None keeps the deterministic narrative.
    """
    alias = model_dir.name
    snap = out / ARTIFACTS / alias
    if model_dir.resolve() != snap.resolve():
        snapshot(model_dir, snap)
    facts = extract_facts(snap)
    rules = load_rules(rule_files)
    checks = evaluate(rules, facts)
    data = build_data(alias, facts, checks)
    prefix = f"{ARTIFACTS}/{alias}/"
    derived = write_derived(facts, out, alias)
    sections = deterministic_narrative(data, prefix, derived)
    source, llm_info = "deterministic", {}
    if narrator is not None:
        sections, source, llm_info = narrator(data, facts, checks, prefix, derived, sections)
    model_name = Path(str(llm_info.get("model") or "an LLM")).name
    if source != "deterministic":
        note = f"drafted by {model_name} and validated against the facts"
    elif llm_info.get("fallback"):
        note = "deterministic (the LLM was unavailable; see the validation record)"
    else:
        note = "deterministic (no LLM configured)"
    text = render("report.md.j2", prefix, derived, d=data, narrative=sections, narrative_note=note,
                  milestones=milestone_rows(facts))
    report = out / f"{alias}.md"
    atomic_write(report, text)
    record = {
        "generator": "lensreport", "generator_version": reportgen.__version__,
        "templates_sha256": templates_hash(), "rules_sha256": rules_hash(rule_files),
        "rule_files": [str(p) for p in rule_files or []],
        "source_run_dir": str(model_dir.resolve()), "artifacts_dir": f"{ARTIFACTS}/{alias}",
        "artifacts_sha256": artifact_hashes(snap), "derived_sha256": hashlib.sha256(
            (out / "derived" / f"{alias}.json").read_bytes()).hexdigest(),
        "narrative_source": source, "llm": llm_info,
        "report_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    atomic_write(out / f"{alias}.build.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
    return BuildOutcome(alias, report, None, source, llm_info)


def build_reports(run_dir: Path, out: Path, rule_files: list[Path] | None = None, narrator: Any = None,
                  jobs: int = 1, progress: bool = False) -> list[BuildOutcome]:
    """Build one report per model (concurrently with jobs > 1); a failure on one model is recorded and the
    others still build."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    dirs = model_dirs(run_dir)

    def one(md: Path) -> BuildOutcome:
        try:
            return build_model_report(md, out, rule_files, narrator)
        except ReportError as e:
            return BuildOutcome(md.name, None, str(e))
        except Exception as e:  # noqa: BLE001 - one model's bug must not stop the others' reports
            return BuildOutcome(md.name, None, f"{type(e).__name__}: {e}")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        outcomes = list(tqdm(pool.map(one, dirs), total=len(dirs), desc="reports", unit="report",
                             disable=not progress))
    return outcomes
