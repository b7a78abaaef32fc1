"""Reliability: bad input gets one clear error naming file and line, nothing is lost, no secret leaves (issue 9).

Each case asserts the exact outcome: the error text (file, line, what was expected), or that the other models'
reports still build, audit 100 % ok and nothing else was touched.
"""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from probe.errors import ProbeError
from probe.prompts import DEFAULT_PROMPTS, load_prompt_set
from reportgen.audit import audit_report
from reportgen.build import build_reports, collect_garbage
from reportgen.refresh import refresh
from tests.helpers_facts import rewrite_artifact

ROOT = Path(__file__).parents[1]
PROMPTS = DEFAULT_PROMPTS.read_text()


# --- prompt files: each bad file is refused with its line and what was expected ------------------------------

def _edit(old: str, new: str) -> str:
    assert old in PROMPTS, old
    return PROMPTS.replace(old, new, 1)


PROMPT_CASES = [
    ("latin1", None, r"prompts\.toml:4: byte 0xe8 is not UTF-8"),
    ("facts_not_tables", _edit('name = "seed-capitals"', 'name = "x"\nfacts = [1, 2]'), r"invalid TOML|facts must be"),
    ("name_int", _edit('name = "seed-capitals"', "name = 3"), r":4: name must be a string, found int"),
    ("unknown_field", _edit('{country} is called simply"', '{country} is {foo}"'), r"may use only \{country\}, found \['foo'\]"),
    ("no_country", _edit("The capital of {country} is called simply", "The capital is called simply"),
     r"must be a string containing \{country\}"),
    ("malformed_brace", _edit('{country} is called simply"', '{country} is {called simply"'), r"may use only \{country\}"),
    ("temperature_inf", _edit("values = [0.1, 2.0]", "values = [0.1, inf]"), r"finite positive numbers"),
    ("temperature_zero", _edit("values = [0.1, 2.0]", "values = [0.0]"), r"finite positive numbers"),
    ("temperature_bool", _edit("values = [0.1, 2.0]", "values = [true]"), r"finite positive numbers"),
    ("temperature_str", _edit("values = [0.1, 2.0]", 'values = ["hot"]'), r"finite positive numbers"),
    ("invalid_toml", _edit('name = "seed-capitals"', 'name = "seed-capitals'), r"prompts\.toml:4: invalid TOML"),
    ("unknown_key", _edit('name = "seed-capitals"', 'name = "seed-capitals"\ncolour = "red"'), r"unknown key 'colour'"),
    ("primary_not_fact", re.sub(r'^primary = "\w+"', 'primary = "atlantis"', PROMPTS, flags=re.M),
     r"primary = 'atlantis' is not a fact id"),
    ("control_int", re.sub(r'^control = "\w+"', "control = 5", PROMPTS, flags=re.M), r"control must be a string"),
]


@pytest.mark.parametrize("case, text, expected", PROMPT_CASES, ids=[c[0] for c in PROMPT_CASES])
def test_bad_prompt_file_is_refused_with_its_line(tmp_path, case, text, expected):
    path = tmp_path / "prompts.toml"
    if text is None:  # a Latin-1 file: the é of "modèle" as one byte
        path.write_bytes(PROMPTS.replace('name = "seed-capitals"', 'name = "mod\u00e8le"').encode("latin-1"))
    else:
        path.write_text(text)
    with pytest.raises(ProbeError, match=expected):
        load_prompt_set(path)


# --- artifacts: a tampered or off-contract run is refused with file:line; other models still build -------------

@pytest.fixture
def run_copy(probe_run, tmp_path):
    run = tmp_path / "run"
    for alias in ("smollm2", "gemma3-270m"):
        shutil.copytree(probe_run / alias, run / alias)
    return run


def _replace(path: Path, old: str, new: str, count: int = 1) -> str:
    text = path.read_text()
    assert old in text, old
    return text.replace(old, new, count)


def _probe_json_line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _tamper_nan(model: Path) -> str:
    text = re.sub(r'"p_top1": [0-9.e-]+', '"p_top1": NaN', (model / "probe.json").read_text(), count=1)
    rewrite_artifact(model, "probe.json", text)
    return rf"probe\.json:{_probe_json_line(text, 'NaN')}: at .*p_top1: nan is not a finite number"


def _tamper_inf(model: Path) -> str:
    text = re.sub(r'"max_kl_bits": [0-9.e-]+', '"max_kl_bits": Infinity', (model / "probe.json").read_text(), count=1)
    rewrite_artifact(model, "probe.json", text)
    return rf"probe\.json:{_probe_json_line(text, 'Infinity')}: at last_layer_gate\.max_kl_bits: inf is not a finite"


def _tamper_header(model: Path) -> str:
    lines = (model / "pure-next-token.csv").read_text().split("\n")
    lines[0] = lines[0].replace("entropy_bits,top1_id", "top1_id,entropy_bits")
    rewrite_artifact(model, "pure-next-token.csv", "\n".join(lines))
    return r"pure-next-token\.csv:1: column \d+ is 'top1_id' but manifest\.json lists 'entropy_bits'"


def _tamper_truncated(model: Path) -> str:
    text = (model / "probe.json").read_text()
    rewrite_artifact(model, "probe.json", text[: len(text) // 2])
    return r"probe\.json:\d+"


def _tamper_not_utf8(model: Path) -> str:
    data = (model / "probe.json").read_bytes().replace(b'"model"', b'"mod\xe8l"', 1)
    (model / "probe.json").write_bytes(data)
    manifest = json.loads((model / "manifest.json").read_text())
    import hashlib

    for art in manifest["artifacts"]:
        if art["path"] == "probe.json":
            art["sha256"] = hashlib.sha256(data).hexdigest()
    (model / "manifest.json").write_text(json.dumps(manifest))
    return r"probe\.json: byte \d+ is not UTF-8"


def _tamper_unhashed(model: Path) -> str:
    (model / "probe.json").write_text(_replace(model / "probe.json", '"n_layers": 30', '"n_layers": 31'))
    return r"probe\.json: sha256 mismatch: manifest expects"


def _tamper_escape_path(model: Path) -> str:
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["artifacts"][0]["path"] = "../secret.json"
    (model / "manifest.json").write_text(json.dumps(manifest))
    return r"artifact path '\.\./secret\.json' must stay inside the run"


def _tamper_missing(model: Path) -> str:
    (model / "raw-vs-norm.csv").unlink()
    return r"raw-vs-norm\.csv: listed in manifest\.json but not a file"


def _tamper_symlink(model: Path) -> str:
    secret = model.parent.parent / "secret.txt"
    secret.write_text("API_KEY=hunter2\n")
    (model / "milestones.csv").unlink()
    (model / "milestones.csv").symlink_to(secret)
    return r"milestones\.csv: a symlink that leaves the run directory; refusing to publish it"


def _tamper_bad_manifest(model: Path) -> str:
    (model / "manifest.json").write_text("{ not json")
    return r"manifest\.json: unreadable manifest"


TAMPERS = {"nan": _tamper_nan, "infinity": _tamper_inf, "csv_header_swapped": _tamper_header,
           "truncated_json": _tamper_truncated, "not_utf8": _tamper_not_utf8, "unhashed_edit": _tamper_unhashed,
           "path_escapes": _tamper_escape_path, "missing_artifact": _tamper_missing, "symlink_out": _tamper_symlink,
           "manifest_not_json": _tamper_bad_manifest}


@pytest.mark.slow
@pytest.mark.parametrize("case", TAMPERS)
def test_tampered_artifacts_fail_one_model_with_file_and_line(run_copy, tmp_path, case):
    expected = TAMPERS[case](run_copy / "smollm2")
    out = tmp_path / "reports"
    outcomes = {o.model: o for o in build_reports(run_copy, out)}
    assert re.search(expected, outcomes["smollm2"].error or ""), outcomes["smollm2"].error
    assert outcomes["gemma3-270m"].error is None  # one model's bad input never spoils another's report
    assert not audit_report(out / "gemma3-270m.md").failed
    assert not (out / "smollm2.md").exists()
    assert "hunter2" not in "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())


@pytest.mark.slow
def test_snapshot_copies_only_listed_artifacts_never_a_link_out(run_copy, tmp_path):
    model = run_copy / "smollm2"
    secret = tmp_path / "secret.txt"
    secret.write_text("API_KEY=hunter2\n")
    (model / "key.txt").symlink_to(secret)
    (model / "weights.bin").write_bytes(b"\0" * 4096)
    out = tmp_path / "reports"
    assert [o.error for o in build_reports(run_copy, out)] == [None, None]
    (snap,) = (out / "artifacts").glob("smollm2-*")
    listed = {a["path"] for a in json.loads((model / "manifest.json").read_text())["artifacts"]}
    assert {p.name for p in snap.iterdir()} == listed | {"manifest.json"}


NAMES = ["my model", "mod\u00e8le", "a|b`c", "<b>x", "[x](y)"]


@pytest.mark.slow
def test_any_model_dir_name_builds_audits_and_stays_fresh(probe_run, tmp_path, capsys):
    run = tmp_path / "run"
    for name in NAMES:
        shutil.copytree(probe_run / "smollm2", run / name)
    out = tmp_path / "reports"
    (out / "plots").mkdir(parents=True)
    (out / "plots" / "my-figure.png").write_bytes(b"mine")  # a user's own file under --out
    (out / "artifacts" / "notes").mkdir(parents=True)
    assert [o.error for o in build_reports(run, out)] == [None] * len(NAMES)
    for name in NAMES:
        report = out / f"{name}.md"
        text = report.read_text()
        assert "<b>" not in text and "](y)" not in text.split("\n", 1)[0]  # the name is text, never markup
        result = audit_report(report)
        assert not result.failed and result.counts["ok"] > 300, result.counts
    assert (out / "plots" / "my-figure.png").read_bytes() == b"mine" and (out / "artifacts" / "notes").is_dir()
    assert collect_garbage(out) == []
    assert refresh(out) == 0
    assert f"0 stale of {len(NAMES) + 1}" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_reports_follow_the_umask(probe_run, tmp_path, umask, mode):
    code = ("import sys; from pathlib import Path; from reportgen.build import build_reports; "
            "build_reports(Path(sys.argv[1]), Path(sys.argv[2]))")
    run = tmp_path / "run"
    shutil.copytree(probe_run / "smollm2", run / "smollm2")
    subprocess.run([sys.executable, "-c", f"import os; os.umask({umask}); {code}", str(run), str(tmp_path / "r")],
                   check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    for name in ("smollm2.md", "smollm2.build.json"):
        assert stat.S_IMODE((tmp_path / "r" / name).stat().st_mode) == mode


def test_broken_pipe_ends_quietly(probe_run):
    proc = subprocess.run(f"{sys.executable} -m reportgen.cli facts {probe_run / 'smollm2'} --json | head -c 10",
                          shell=True, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout == "[\n  {\n    " and proc.returncode == 0 and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
