"""`reportgen` command line: build, facts, audit, refresh."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from reportgen.errors import ReportError


def cmd_facts(args: argparse.Namespace) -> int:
    """List every fact of one model's artifacts with its file:line."""
    from reportgen.facts import extract_facts, format_facts

    print(format_facts(extract_facts(Path(args.model_dir)), args.json))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Check every citation of a markdown report against the cited lines; exit 1 if any is not ok."""
    from reportgen.audit import audit_cli

    return audit_cli(Path(args.report), Path(args.root) if args.root else None, args.json)


def cmd_build(args: argparse.Namespace) -> int:
    """Build one report per model of RUN_DIR into --out (artifacts are snapshotted under OUT/artifacts/)."""
    from reportgen.build import build_reports
    from reportgen.narrate import make_narrator

    narrator, closer = make_narrator(args)
    try:
        outcomes = build_reports(Path(args.run_dir), Path(args.out), args.rules, narrator, jobs=args.jobs,
                                 progress=not args.quiet, html=args.html)
    finally:
        closer()
    failed = 0
    for o in outcomes:
        if o.error:
            failed += 1
            print(f"reportgen: {o.model}: FAILED: {o.error}", file=sys.stderr)
        elif args.require_llm and narrator is not None and (o.llm.get("fallback") or o.llm.get("fallback_sections")
                                                              or o.llm.get("removed_sentences")):
            failed += 1
            why = o.llm.get("fallback") or "validation removed drafted text"
            print(f"reportgen: {o.model}: --require-llm: {why}; the report was written with deterministic text",
                  file=sys.stderr)
        else:
            tokens = o.llm.get("usage") or {}
            extra = (f" (LLM {Path(str(o.llm.get('model'))).name}: {o.llm.get('calls', 0)} calls, "
                     f"{o.llm.get('cache_hits', 0)} cached; prompt {o.llm.get('prompt_tokens_counted', 0)} tokens "
                     f"counted; usage {tokens.get('prompt_tokens', 0)} tokens sent, "
                     f"{tokens.get('completion_tokens', 0)} received)" if o.llm else "")
            print(f"reportgen: {o.model}: {o.report} [{o.narrative_source}]{extra}")
    if args.html and not failed:
        pages = sorted(Path(args.out).glob("*.html"))
        print(f"reportgen: HTML: {', '.join(str(p) for p in pages)}")
    return 1 if failed else 0


def cmd_refresh(args: argparse.Namespace) -> int:
    """Rebuild only the stale reports of a reports directory, and say why each was rebuilt or kept."""
    from reportgen.narrate import make_narrator
    from reportgen.refresh import refresh

    narrator, closer = make_narrator(args)
    try:
        return refresh(Path(args.reports_dir), dry_run=args.dry_run, narrator=narrator, jobs=args.jobs,
                       base_url=args.base_url)
    finally:
        closer()


def _llm_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--llm", choices=["none", "openai", "local", "narrator"], default=None,
                   help="narrative drafter: none (deterministic, the default), openai (any OpenAI-compatible "
                        "server; OPENAI_API_KEY / OPENAI_BASE_URL as in the openai SDK), local (bundled SmolLM2 "
                        "served by transformers serve on 127.0.0.1), narrator (Qwen2.5-Coder-1.5B served by "
                        "llama-server on 127.0.0.1; set up once with `make narrator`)")
    p.add_argument("--llm-model", help="model name sent to the server")
    p.add_argument("--base-url", help="OpenAI-compatible base URL (default: $OPENAI_BASE_URL)")
    p.add_argument("--llm-timeout", type=float, metavar="SECONDS",
                   help="seconds to wait for one LLM reply before retrying (default 120; local 300; narrator 900)")
    p.add_argument("--require-llm", action="store_true",
                   help="exit 1 when any report falls back to deterministic text, wholly or in part (for CI)")
    p.add_argument("--jobs", type=int, default=1, help="concurrent LLM drafts (default 1)")
    p.add_argument("--rules", type=Path, action="append", help="extra rules TOML (repeatable; same id overrides)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """Argument parser for `reportgen`."""
    p = argparse.ArgumentParser(prog="reportgen", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write one cited report per model", description=cmd_build.__doc__)
    b.add_argument("run_dir")
    b.add_argument("--out", required=True, help="reports directory, e.g. reports/<name>")
    b.add_argument("--html", action="store_true",
                   help="also write <model>.html (and cross-models.html): static pages readable offline, each value "
                        "a link to its artifact line highlighted in view/; refresh keeps them in sync")
    _llm_flags(b)
    b.set_defaults(func=cmd_build)
    f = sub.add_parser("facts", help="list facts with file:line", description=cmd_facts.__doc__)
    f.add_argument("model_dir")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_facts)
    a = sub.add_parser("audit", help="check citations of a markdown report", description=cmd_audit.__doc__)
    a.add_argument("report")
    a.add_argument("--root", help="directory citations are relative to (default: the report's directory)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_audit)
    r = sub.add_parser("refresh", help="rebuild stale reports only", description=cmd_refresh.__doc__)
    r.add_argument("reports_dir")
    r.add_argument("--dry-run", action="store_true", help="only say what would be rebuilt")
    _llm_flags(r)
    r.set_defaults(func=cmd_refresh)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point: ReportError becomes one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ReportError as e:
        print(f"reportgen: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        if isinstance(e, BrokenPipeError):
            # `... --json | head` closed the pipe: not an error of ours. Point stdout at devnull so the
            # interpreter's final flush does not raise again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        # A full disk, a read-only or missing directory: one line naming the path, not a traceback.
        print(f"reportgen: error: {e.filename + ': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001 - keep the traceback for bug reports
        traceback.print_exc()
        return 3


if __name__ == "__main__":
    sys.exit(main())
