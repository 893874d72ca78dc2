# One venv per checkout; reused when pyproject.toml has not changed.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.roadsense-installed

.PHONY: install test lint demo bench bench-readme clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# CPU torch first: a bare torch requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests/ -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

demo: $(STAMP)
	$(VENV)/bin/roadsense-marl demo

# Results go outside the source tree (ROADSENSE_MARL_BENCH_OUT or ~/.cache/roadsense_marl/bench).
bench: $(STAMP)
	$(PY) -m pytest benchmarks/ -q -s

# On purpose only: rewrite benchmarks/results/latest.* and the README's Performance table.
bench-readme: $(STAMP)
	$(PY) -m pytest benchmarks/ -q -s --bench-readme

clean:
	rm -rf $(VENV) .pytest_cache build dist runs
