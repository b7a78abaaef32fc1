"""Build reports: snapshot a run's artifacts beside the reports, extract facts, check, render, record."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import reportgen
from probe.artifacts import atomic_write_text as atomic_write  # one atomic writer for both packages
from reportgen.bound import Binding
from reportgen.contract import check_probe_json
from reportgen.errors import ReportError
from reportgen.facts import FactSet, extract_facts
from reportgen.jsonmap import format_path
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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Binary twin of atomic_write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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


def snapshot_id(model_dir: Path) -> str:
    """Content id of a model's artifacts: sha256 over (path, sha256) of each manifest artifact.

    The manifest's timings are left out, so re-running a probe with identical results keeps the same id.
    """
    try:
        manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
        pairs = sorted((a["path"], a["sha256"]) for a in manifest["artifacts"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ReportError(f"{model_dir / 'manifest.json'}: unreadable manifest ({e})") from e
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:12]


def snapshot(src: Path, dest: Path) -> None:
    """Copy a model's artifacts to `dest` (a content-addressed name) via a temp dir and one rename.

    Snapshots are never rewritten in place: a new artifact set gets a new directory, so a report that still
    cites the old one stays consistent until the report itself is replaced.
    """
    if dest.is_dir():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    try:
        for p in sorted(src.iterdir()):
            if p.is_file():
                shutil.copyfile(p, tmp / p.name)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def artifact_hashes(model_dir: Path) -> dict[str, str]:
    """sha256 of every file of a model's artifact directory (manifest included)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(model_dir.iterdir()) if p.is_file()}


def write_derived(facts: FactSet, out: Path, alias: str, prefix: str = "") -> dict[str, Binding]:
    """Write the derived facts of one model to a content-addressed `derived/<alias>-<hash>.json` (one scalar per
    line) and return each derived key's binding to its value line, so a derived value is auditable like any
    artifact value. Each entry names its formula and the artifact lines of its sources."""
    from reportgen.jsonmap import parse_json_map

    derived = [f for f in facts if f.sources]
    doc = {f.key.split(":", 1)[1]: {"value": f.value, "unit": f.unit, "formula": f.formula, "sources": list(f.sources),
                                    "source_lines": [prefix + c for c in f.source_citations]} for f in derived}
    text = json.dumps(doc, indent=2, ensure_ascii=True) + "\n"
    rel = f"derived/{alias}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"
    if not (out / rel).is_file():
        atomic_write(out / rel, text)
    jm = parse_json_map(text, rel)
    bindings = {}
    for f in derived:
        path = (f.key.split(":", 1)[1], "value")
        bindings[f.key] = Binding(rel, jm.node(path).line, format_path(path))
    return bindings


_CITED = re.compile(r"\b((?:artifacts|derived|plots)/[A-Za-z0-9._-]+)")


def collect_garbage(out: Path) -> list[str]:
    """Delete snapshots and derived files that no report in `out` cites any more, and temp leftovers.

    Runs after every build and refresh, so a killed run's half-written temp dirs are cleaned by the next one.
    """
    cited: set[str] = set()
    for md in out.glob("*.md"):
        cited.update(_CITED.findall(md.read_text(encoding="utf-8", errors="replace")))
    removed = []
    for sub in (ARTIFACTS, "derived", "plots"):
        base = out / sub
        for p in sorted(base.iterdir()) if base.is_dir() else []:
            rel = f"{sub}/{p.name}"
            if rel in cited:
                continue
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(rel)
    for p in out.glob(".*.md.*"):
        p.unlink(missing_ok=True)
    return removed


def deterministic_narrative(data: ReportData, prefix: str, derived: dict[str, Binding]) -> dict[str, str]:
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
                       narrator: Any = None, name: str | None = None) -> BuildOutcome:
    """Snapshot, extract, check, render and record one model's report under `out`.

    Args:
        narrator: optional callable(data, facts, checks, prefix, deterministic) -> (sections, source, llm_info);
            None keeps the deterministic narrative.
    """
    alias = name or model_dir.name
    sid = snapshot_id(model_dir)
    snap = out / ARTIFACTS / f"{alias}-{sid}"
    if model_dir.resolve() != snap.resolve():
        snapshot(model_dir, snap)
    check_probe_json(snap)
    facts = extract_facts(snap)
    rules = load_rules(rule_files)
    checks = evaluate(rules, facts)
    data = build_data(alias, facts, checks)
    prefix = f"{ARTIFACTS}/{alias}-{sid}/"
    derived = write_derived(facts, out, alias, prefix)
    sections = deterministic_narrative(data, prefix, derived)
    source, llm_info = "deterministic", {}
    if narrator is not None:
        sections, source, llm_info = narrator(data, facts, checks, prefix, derived, sections)
    model_name = Path(str(llm_info.get("model") or "an LLM")).name
    if source != "deterministic":
        note = f"drafted by {model_name} and validated against the facts"
    elif llm_info.get("fallback"):
        note = f"deterministic ({llm_info['fallback']}; see {alias}.validation.json)"
    else:
        note = "deterministic (no LLM configured)"
    from reportgen.plots import write_plot

    plot = write_plot(data, out, f"{alias}-{sid}")
    text = render("report.md.j2", prefix, derived, d=data, narrative=sections, narrative_note=note,
                  snapshot_prefix=prefix, milestones=milestone_rows(facts), plot=plot)
    report = out / f"{alias}.md"
    # The report file is the commit point: it names its snapshot and derived file, both already complete.
    atomic_write(report, text)
    record = {
        "generator": "lensreport", "generator_version": reportgen.__version__,
        "templates_sha256": templates_hash(), "rules_sha256": rules_hash(rule_files),
        "rule_files": [str(p) for p in rule_files or []],
        "source_run_dir": os.path.relpath(model_dir.resolve(), out.resolve()), "snapshot_id": sid,
        "artifacts_dir": f"{ARTIFACTS}/{alias}-{sid}", "artifacts_sha256": artifact_hashes(snap),
        "narrative_source": source, "llm": {k: v for k, v in llm_info.items() if k != "usage"},
        "llm_settings": narrator.settings() if narrator is not None and hasattr(narrator, "settings") else None,
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
    from reportgen.cross import build_cross_report

    if sum(o.error is None for o in outcomes) >= 1:
        try:
            build_cross_report(out)
        except ReportError as e:
            outcomes.append(BuildOutcome("cross-models", None, str(e)))
    collect_garbage(out)
    return outcomes
