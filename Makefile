# One venv per checkout; reused when pyproject.toml has not changed.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.roadsense-installed

.PHONY: install test lint demo bench bench-readme clean install-rllib test-rllib generalisation

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# CPU torch first: a bare torch requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests/ -q

# Ray RLlib in its own venv: ray pins gymnasium==1.2.2, the main venv keeps the newest. The RLlib
# tests, and the env / training tests again under ray's pins (gymnasium 1.2.2).
RLLIB_VENV  ?= .venv-rllib
RLLIB_PY    := $(RLLIB_VENV)/bin/python
RLLIB_STAMP := $(RLLIB_VENV)/.roadsense-installed
RLLIB_TESTS ?= tests/integration/test_rllib.py tests/unit/test_rllib_config.py \
	tests/integration/test_core.py tests/integration/test_parallel_env.py tests/integration/test_single_ego.py \
	tests/integration/test_core_vec_env_on_sumo.py tests/integration/test_training.py \
	tests/integration/test_run_folders.py tests/integration/test_evaluate.py \
	tests/unit/test_vec_env.py tests/unit/test_vec_env_close.py tests/unit/test_core_vec_env.py \
	tests/unit/test_masked_ppo.py tests/unit/test_policies.py tests/unit/test_env_config.py tests/unit/test_runs.py

install-rllib: $(RLLIB_STAMP)

$(RLLIB_STAMP): pyproject.toml
	test -x $(RLLIB_PY) || $(PYTHON) -m venv $(RLLIB_VENV)
	$(RLLIB_PY) -m pip install -q torch==2.13.0
	$(RLLIB_PY) -m pip install -q -e ".[dev,rllib]" "ray[rllib]==2.60.0"
	touch $(RLLIB_STAMP)

test-rllib: $(RLLIB_STAMP)
	$(RLLIB_PY) -c "import gymnasium, ray; print('ray', ray.__version__, 'gymnasium', gymnasium.__version__)"
	$(RLLIB_PY) -m pytest $(RLLIB_TESTS) -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

demo: $(STAMP)
	$(VENV)/bin/roadsense-marl demo

# The generalisation table (scenarios x radios x policies): runs/generalisation/generalisation.{md,json}, and into the README.
GEN_MODEL    ?= pretrained
GEN_EPISODES ?= 50
GEN_WORKERS  ?= 2
generalisation: $(STAMP)
	$(VENV)/bin/roadsense-marl evaluate --generalisation $(GEN_MODEL) --episodes $(GEN_EPISODES) \
		--workers $(GEN_WORKERS) --no-progress --out runs/generalisation
	$(PY) -m roadsense_marl.evaluation.generalisation README.md runs/generalisation/generalisation.md

# Results go outside the source tree (ROADSENSE_MARL_BENCH_OUT or ~/.cache/roadsense_marl/bench).
bench: $(STAMP)
	$(PY) -m pytest benchmarks/ -q -s

# On purpose only: rewrite benchmarks/results/latest.* and the README's Performance table.
bench-readme: $(STAMP)
	$(PY) -m pytest benchmarks/ -q -s --bench-readme

clean:
	rm -rf $(VENV) $(RLLIB_VENV) .pytest_cache build dist runs
