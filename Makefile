# Everything from a fresh machine: `make test` and `make demo` each do the whole set-up.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The CPU build of torch must be installed before anything that depends on torch: a bare
# `torch` requirement resolved by pip can pull a multi-GB CUDA build instead.
TORCH  ?= torch==2.13.0

.PHONY: setup system-deps test reliability demo bench clean

setup: system-deps $(VENV)/.installed

system-deps:
	@bash scripts/system-deps.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $@

test: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q

# The part of the suite that kills, races and feeds hostile input (also run by `make test`).
reliability: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q tests/reliability

demo: setup
	@bash scripts/demo.sh

bench: setup
	$(PY) benchmarks/embed_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
