"""Refresh a reports directory: rebuild only what went stale, decided by content hashes, never mtimes.

A model report is stale when its source artifacts (by the manifest's per-file sha256), the templates, the rules,
the generator version or the report file itself differ from its build record, or its snapshot is missing. The
cross-model report is stale when any model report was rebuilt or its own inputs changed. Unchanged inputs mean
no LLM call and no file written.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import reportgen
from reportgen.build import build_model_report, collect_garbage, reports_lock, snapshot_id
from reportgen.cross import CROSS, build_cross_report
from reportgen.errors import ReportError
from reportgen.html import sync_html
from reportgen.llm import OPENAI_DEFAULT_BASE_URL
from reportgen.render import templates_hash
from reportgen.rules import rules_hash


@dataclass
class Decision:
    """Whether one report is rebuilt, and why."""

    name: str
    stale: bool
    reasons: list[str] = field(default_factory=list)
    source: Path | None = None
    rule_files: list[Path] = field(default_factory=list)
    llm_settings: dict[str, Any] | None = None
    error: str | None = None  # the build record itself is broken: nothing can be rebuilt from it
    html: bool = False  # built with --html: the rebuild keeps it


def _sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _changed_files(record: dict[str, Any], source: Path) -> list[str]:
    """Names of cited artifacts whose sha256 differs between the build record and the source's manifest."""
    try:
        manifest = json.loads((source / "manifest.json").read_text())
        now = {a["path"]: a["sha256"] for a in manifest["artifacts"]}
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return ["manifest.json (unreadable)"]
    old = {k: v for k, v in record.get("artifacts_sha256", {}).items() if k != "manifest.json"}
    return sorted(k for k in set(now) | set(old) if now.get(k) != old.get(k))


# Fields a build record must have, with their types; a hand-edited record is refused naming the field.
_RECORD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "source_run_dir": str, "artifacts_dir": str, "snapshot_id": str, "templates_sha256": str, "rules_sha256": str,
    "generator_version": str, "report_sha256": str, "rule_files": list, "artifacts_sha256": dict,
    "llm_settings": (dict, type(None)),
}


def _read_record(path: Path) -> dict[str, Any]:
    """A build record, checked field by field.

    Raises:
        ReportError: Unreadable, not JSON, not an object, or a field of the wrong type (named).
    """
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportError(f"{path}: unreadable build record ({e}); rebuild with reportgen build") from e
    if not isinstance(rec, dict):
        raise ReportError(f"{path}: a build record is a JSON object, found {type(rec).__name__}; rebuild with "
                          "reportgen build")
    for field_name, kind in _RECORD_FIELDS.items():
        if field_name in rec and not isinstance(rec[field_name], kind):
            raise ReportError(f"{path}: field {field_name!r} must be {getattr(kind, '__name__', 'an object')}, found "
                              f"{type(rec[field_name]).__name__}; rebuild with reportgen build")
    if not all(isinstance(p, str) for p in rec.get("rule_files", [])):
        raise ReportError(f"{path}: field 'rule_files' must list paths; rebuild with reportgen build")
    return rec


def decide(out: Path, record_path: Path, tpl_hash: str) -> Decision:
    """Compare one model report's build record with the current inputs."""
    name = record_path.name[: -len(".build.json")]
    rec = _read_record(record_path)
    rule_files = [Path(p) for p in rec.get("rule_files", [])]
    d = Decision(name, False, rule_files=rule_files, llm_settings=rec.get("llm_settings"), html=rec.get("html") is True)
    # Recorded relative to the reports directory (absolute in older records), so a moved checkout still works.
    src = out / rec.get("source_run_dir", "")
    if not (src / "manifest.json").is_file():
        # The run directory is gone or moved: the snapshot is the source; nothing upstream can have changed.
        src = out / rec.get("artifacts_dir", "")
    d.source = src
    if not (out / rec.get("artifacts_dir", "")).is_dir():
        d.reasons.append(f"snapshot {rec.get('artifacts_dir')} missing")
    plots = rec.get("plot_files") if isinstance(rec.get("plot_files"), list) else []
    missing = [p for p in plots if isinstance(p, str) and not (out / p).is_file()]
    if missing:
        d.reasons.append(f"plot {', '.join(missing)} missing")
    if (src / "manifest.json").is_file() and snapshot_id(src) != rec.get("snapshot_id"):
        d.reasons.append("artifacts changed: " + (", ".join(_changed_files(rec, src)) or "snapshot id differs"))
    if rec.get("templates_sha256") != tpl_hash:
        d.reasons.append("templates changed")
    try:
        if rec.get("rules_sha256") != rules_hash(rule_files):
            d.reasons.append("rules changed")
    except OSError:
        d.reasons.append("a rules file is missing")
    if rec.get("generator_version") != reportgen.__version__:
        d.reasons.append(f"generator {rec.get('generator_version')} -> {reportgen.__version__}")
    if _sha(out / f"{name}.md") != rec.get("report_sha256"):
        d.reasons.append("report file edited, missing or from an interrupted build")
    d.stale = bool(d.reasons)
    return d


def _decide_or_fail(out: Path, record_path: Path, tpl_hash: str) -> Decision:
    """`decide`, but a broken record fails only its own report (it is printed as FAILED, others go on)."""
    try:
        return decide(out, record_path, tpl_hash)
    except ReportError as e:
        return Decision(record_path.name[: -len(".build.json")], True, [], error=str(e))


def decide_cross(out: Path, rebuilt: bool, tpl_hash: str, n_models: int) -> Decision:
    """Staleness of cross-models.md."""
    d = Decision(CROSS, False)
    rec_path = out / f"{CROSS}.build.json"
    if n_models < 2:
        return d
    if not rec_path.is_file():
        d.reasons.append("no cross-model report yet")
    else:
        try:
            rec = json.loads(rec_path.read_text(encoding="utf-8"))
            rec = rec if isinstance(rec, dict) else {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            rec = {}  # unreadable: every comparison below fails, so it is rebuilt
        models = {}
        for p in out.glob("*.build.json"):
            if p.name != f"{CROSS}.build.json":
                try:
                    models[p.name[: -len(".build.json")]] = _read_record(p).get("artifacts_dir")
                except ReportError:
                    models[p.name[: -len(".build.json")]] = None
        if rec.get("models") != models:
            d.reasons.append("model snapshots changed")
        if isinstance(rec.get("plot_file"), str) and not (out / rec["plot_file"]).is_file():
            d.reasons.append(f"plot {rec['plot_file']} missing")
        if rec.get("templates_sha256") != tpl_hash:
            d.reasons.append("templates changed")
        if rec.get("generator_version") != reportgen.__version__:
            d.reasons.append("generator version changed")
        if _sha(out / f"{CROSS}.md") != rec.get("report_sha256"):
            d.reasons.append("report file edited, missing or from an interrupted build")
    if rebuilt:
        d.reasons.append("a model report was rebuilt")
    d.stale = bool(d.reasons)
    return d


class _Narrators:
    """Narrators recreated from build records, so a refresh drafts the way the original build did.

    A build record is an editable file, so its endpoint is never trusted with the API key: an OpenAI-compatible
    endpoint is used only when it is the one given now (``--base-url``, else ``OPENAI_BASE_URL``, else the
    openai default); a record naming another endpoint fails that report with a message saying how to allow it.
    """

    def __init__(self, out: Path, base_url: str | None = None):
        self.out = out
        self.allowed = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL).rstrip("/")
        self._made: dict[str, Any] = {}
        self._closers: list[Any] = []
        self._lock = threading.Lock()

    def get(self, settings: dict[str, Any] | None) -> Any:
        """The narrator a build record's ``llm_settings`` ask for (None: deterministic).

        Raises:
            ReportError: The record names an endpoint other than the one allowed now.
        """
        if not settings or settings.get("provider") in (None, "none"):
            return None
        openai = settings["provider"] == "openai"
        recorded = str(settings.get("base_url") or OPENAI_DEFAULT_BASE_URL).rstrip("/")
        if openai and recorded != self.allowed:
            raise ReportError(f"the build record drafts with the LLM endpoint {recorded}, but the API key is only "
                              f"sent to the endpoint given by --base-url or OPENAI_BASE_URL ({self.allowed}); "
                              f"pass --base-url {recorded} to allow it, or --llm none")
        key = json.dumps(settings, sort_keys=True)
        with self._lock:  # --jobs: two stale reports must not start two servers for one setting
            if key not in self._made:
                import argparse

                from reportgen.narrate import make_narrator

                ns = argparse.Namespace(llm=settings["provider"], llm_model=settings.get("model") if openai else None,
                                        base_url=self.allowed if openai else None)
                self._made[key], closer = make_narrator(ns, self.out)
                self._closers.append(closer)
            return self._made[key]

    def close(self) -> None:
        """Stop any local server a recreated narrator started."""
        for closer in self._closers:
            closer()


def refresh(out: Path, dry_run: bool = False, narrator: Any = None, jobs: int = 1, base_url: str | None = None) -> int:
    """Rebuild the stale reports of `out` and print one line per report saying why it was rebuilt or kept.

    Without an explicit `narrator`, each stale report is drafted the way its build record says it was (the
    same LLM provider and model, the API key from the environment), or deterministically.

    Returns:
        0 when every stale report was rebuilt (or none was stale), 1 when a rebuild failed.
    """
    t0 = time.perf_counter()
    if not out.is_dir():
        raise ReportError(f"{out}: not a reports directory")
    records = sorted(p for p in out.glob("*.build.json") if p.name != f"{CROSS}.build.json")
    if not records:
        raise ReportError(f"{out}: no build records (*.build.json); build reports first with reportgen build")
    with reports_lock(out) if not dry_run else nullcontext():
        tpl = templates_hash()
        decisions = [_decide_or_fail(out, r, tpl) for r in records]
        recorded = _Narrators(out, base_url)
        try:
            rebuilt, failed = _rebuild(out, decisions, dry_run, narrator, recorded, jobs)
        finally:
            recorded.close()
        cross = decide_cross(out, rebuilt, tpl, len(records))
        if cross.stale:
            try:
                if not dry_run:
                    build_cross_report(out)
                print(f"{'stale   ' if dry_run else 'rebuilt '} {CROSS}: " + "; ".join(cross.reasons))
            except ReportError as e:
                failed += 1
                print(f"FAILED   {CROSS}: {e}")
        elif len(records) >= 2:
            print(f"kept     {CROSS}: up to date")
        try:
            for line in sync_html(out, dry_run):  # HTML pages follow the markdown and the build records
                print(line)
        except ReportError as e:
            failed += 1
            print(f"FAILED   html: {e}")
        if not dry_run and (rebuilt or cross.stale):
            collect_garbage(out)
    print(f"refresh: {sum(d.stale for d in decisions) + cross.stale} stale of {len(decisions) + (len(records) >= 2)}"
          f" in {time.perf_counter() - t0:.2f} s{' (dry run)' if dry_run else ''}")
    return 1 if failed else 0


def _rebuild(out: Path, decisions: list[Decision], dry_run: bool, narrator: Any, recorded: _Narrators,
             jobs: int = 1) -> tuple[bool, int]:
    """Rebuild the stale model reports (jobs > 1: concurrently); print a line per decision in order.

    Returns:
        (whether any report was rebuilt, number of failed rebuilds).
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(d: Decision) -> str:
        if d.error is not None:
            return f"FAILED   {d.name}: {d.error}"
        if not d.stale:
            return f"kept     {d.name}: up to date"
        if dry_run:
            return f"stale    {d.name}: " + "; ".join(d.reasons)
        try:
            assert d.source is not None
            nar = narrator if narrator is not None else recorded.get(d.llm_settings)
            build_model_report(d.source, out, d.rule_files or None, nar, name=d.name, html=d.html)
            return f"rebuilt  {d.name}: " + "; ".join(d.reasons)
        except ReportError as e:
            return f"FAILED   {d.name}: " + "; ".join([*d.reasons, str(e)])

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        lines = list(pool.map(one, decisions))
    for line in lines:
        print(line)
    return any(ln.startswith("rebuilt") for ln in lines), sum(ln.startswith("FAILED") for ln in lines)
