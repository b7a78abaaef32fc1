"""Build reports: snapshot a run's artifacts beside the reports, extract facts, check, render, record."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import reportgen
from probe.artifacts import atomic_write_text as atomic_write  # one atomic writer for both packages
from probe.artifacts import set_public_mode
from reportgen.bound import Binding
from reportgen.contract import check_probe_json
from reportgen.errors import ReportError
from reportgen.facts import FactSet, extract_facts
from reportgen.formatting import escape_md
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
        set_public_mode(Path(tmp))
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
    """Copy the artifacts a model's manifest lists (and the manifest) to `dest`, via a temp dir and one rename.

    Only listed files are copied, and never through a symlink that leaves the model directory: a run directory
    may hold other files (logs, weights, a link to a secret), and the snapshot is published beside the reports.
    Snapshots are never rewritten in place: a new artifact set gets a new directory, so a report that still
    cites the old one stays consistent until the report itself is replaced.

    Raises:
        ReportError: The manifest is unreadable, or a listed file is missing, not a file, or leaves the run.
    """
    if dest.is_dir():
        return
    names = ["manifest.json", *_listed_artifacts(src)]
    real_src = src.resolve()
    for name in names:
        path = src / name
        if not path.is_file():
            raise ReportError(f"{path}: listed in manifest.json but not a file; re-run `probe run`")
        if not path.resolve().is_relative_to(real_src):
            raise ReportError(f"{path}: a symlink that leaves the run directory; refusing to publish it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    try:
        for name in names:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / name, tmp / name)
            set_public_mode(tmp / name)
        set_public_mode(tmp, directory=True)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _listed_artifacts(model_dir: Path) -> list[str]:
    """Artifact paths of a model's manifest, each checked to stay inside the model directory."""
    try:
        manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
        paths = [a["path"] for a in manifest["artifacts"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ReportError(f"{model_dir / 'manifest.json'}: unreadable manifest ({e}); re-run `probe run`") from e
    for path in paths:
        parts = Path(str(path)).parts
        if not isinstance(path, str) or Path(path).is_absolute() or ".." in parts or not parts:
            raise ReportError(f"{model_dir / 'manifest.json'}: artifact path {path!r} must stay inside the run")
    return paths


def artifact_hashes(model_dir: Path) -> dict[str, str]:
    """sha256 of every file of a model's artifact directory (manifest included)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(model_dir.iterdir()) if p.is_file()}


def write_derived(facts: FactSet, out: Path, alias: str, prefix: str = "") -> dict[str, Binding]:
    """Write the derived facts of one model to a content-addressed `derived/<alias>-<hash>.json` (one scalar per
    line) and return each derived key's binding to its value line, so a derived value is auditable like any
    artifact value. Each entry names its formula and the artifact lines of its sources."""
    from reportgen.jsonmap import parse_json_map

    derived = facts.derived()
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


# <alias>-<content id>[.json|.png], and plots <alias>-<content id>-<kind>.png: what builds write
_OURS = re.compile(r"^.+-[0-9a-f]{12}(?:\.json|(?:-(?:heatmap|lenses|depth))?\.png)?$")
_TEMP = re.compile(r"^\..+\.(?:tmp-\w+|md\.\w+|json\.\w+|png\.\w+)$")  # leftovers of interrupted writes


def _referenced(out: Path) -> set[str]:
    """Paths under `out` that a build record or a report refers to (snapshots, derived files, plots)."""
    refs: set[str] = set()
    for record in out.glob("*.build.json"):
        try:
            rec = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict):
            refs.update(str(v) for k, v in rec.items() if k in ("artifacts_dir", "derived_file", "plot_file") and v)
            if isinstance(rec.get("plot_files"), list):
                refs.update(str(v) for v in rec["plot_files"])
            if isinstance(rec.get("models"), dict):
                refs.update(str(v) for v in rec["models"].values())
    for md in out.glob("*.md"):
        text = unquote(md.read_text(encoding="utf-8", errors="replace"))
        refs.update(m.group(1) for m in re.finditer(r"((?:artifacts|derived|plots)/[^/#)\s\"]+)", text))
    return refs


def collect_garbage(out: Path) -> list[str]:
    """Delete snapshots, derived files and plots of ours that no build record or report refers to any more, and
    the temp leftovers of interrupted writes.

    Only names that builds write (``<alias>-<12 hex>``) are candidates: a user's own files under ``artifacts/``,
    ``derived/`` or ``plots/`` are never touched. Runs after every build and refresh, under the reports lock.
    """
    cited = _referenced(out)
    removed = []
    for sub in (ARTIFACTS, "derived", "plots"):
        base = out / sub
        for p in sorted(base.iterdir()) if base.is_dir() else []:
            rel = f"{sub}/{p.name}"
            if rel in cited or not (_OURS.match(p.name) or _TEMP.match(p.name)) or p.is_symlink():
                continue
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(rel)
    for p in out.glob(".*.md.*"):
        p.unlink(missing_ok=True)
    return removed


@contextmanager
def reports_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on a reports directory, so a build and a refresh (or two) never interleave.

    Waits for the other process, saying so on stderr; the lock dies with its process, so kill -9 never leaves a
    stale lock behind.
    """
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".reportgen.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"reportgen: waiting for another reportgen working on {out}", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
                       narrator: Any = None, name: str | None = None, html: bool = False) -> BuildOutcome:
    """Snapshot, extract, check, render and record one model's report under `out`.

    Args:
        narrator: optional callable(data, facts, checks, prefix, deterministic) -> (sections, source, llm_info);
            None keeps the deterministic narrative.
        html: record that this report wants an HTML page (`reportgen.html.sync_html` writes it after the build).
    """
    alias = name or model_dir.name
    sid = snapshot_id(model_dir)
    snap = out / ARTIFACTS / f"{alias}-{sid}"
    if model_dir.resolve() != snap.resolve():
        snapshot(model_dir, snap)
    facts = extract_facts(snap)  # first: every artifact's sha256 is checked before anything is parsed further
    check_probe_json(snap)
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
        note = f"deterministic ({llm_info['fallback']}; see {escape_md(alias)}.validation.json)"
    else:
        note = "deterministic (no LLM configured)"
    from reportgen.plots import write_model_plots

    plots = write_model_plots(data, facts, out, f"{alias}-{sid}")
    plot = plots["layers"]
    text = render("report.md.j2", prefix, derived, d=data, narrative=sections, narrative_note=note,
                  snapshot_prefix=prefix, milestones=milestone_rows(facts), plot=plot,
                  plots=plots)
    report = out / f"{alias}.md"
    # The report file is the commit point: it names its snapshot and derived file, both already complete.
    atomic_write(report, text)
    record = {
        "generator": "lensreport", "generator_version": reportgen.__version__,
        "templates_sha256": templates_hash(), "rules_sha256": rules_hash(rule_files),
        "rule_files": [str(p) for p in rule_files or []],
        "source_run_dir": os.path.relpath(model_dir.resolve(), out.resolve()), "snapshot_id": sid,
        "artifacts_dir": f"{ARTIFACTS}/{alias}-{sid}", "artifacts_sha256": artifact_hashes(snap),
        "derived_file": next(iter(derived.values())).path if derived else None, "plot_file": plot,
        "plot_files": sorted(plots.values()),
        "narrative_source": source, "llm": {k: v for k, v in llm_info.items() if k != "usage"},
        "llm_settings": narrator.settings() if narrator is not None and hasattr(narrator, "settings") else None,
        "report_sha256": hashlib.sha256(text.encode()).hexdigest(), "html": html,
    }
    atomic_write(out / f"{alias}.build.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
    return BuildOutcome(alias, report, None, source, llm_info)


def build_reports(run_dir: Path, out: Path, rule_files: list[Path] | None = None, narrator: Any = None,
                  jobs: int = 1, progress: bool = False, html: bool = False) -> list[BuildOutcome]:
    """Build one report per model (concurrently with jobs > 1); a failure on one model is recorded and the
    others still build."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    dirs = model_dirs(run_dir)

    def one(md: Path) -> BuildOutcome:
        try:
            return build_model_report(md, out, rule_files, narrator, html=html)
        except ReportError as e:
            return BuildOutcome(md.name, None, str(e))
        except Exception as e:  # noqa: BLE001 - one model's bug must not stop the others' reports
            return BuildOutcome(md.name, None, f"{type(e).__name__}: {e}")

    from reportgen.cross import build_cross_report

    with reports_lock(out), ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        outcomes = list(tqdm(pool.map(one, dirs), total=len(dirs), desc="reports", unit="report",
                             disable=not progress))
        if sum(o.error is None for o in outcomes) >= 1:
            try:
                build_cross_report(out)
            except ReportError as e:
                outcomes.append(BuildOutcome("cross-models", None, str(e)))
        from reportgen.html import sync_html

        try:
            sync_html(out)  # HTML pages per build record, after the markdown they render
        except ReportError as e:
            outcomes.append(BuildOutcome("html", None, str(e)))
        collect_garbage(out)
    return outcomes
