# The two commands: `make test` and `make bench`. The first target that needs it creates the
# virtual environment (.venv) from pyproject.toml; later calls reuse it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUITE  ?= quick
RESULTS ?= results
# local runners side by side for `make bench` (one thread each; cost is measured alone)
JOBS   ?= 2
# `make cost-benchmark COST_JSON=results/cost/<name>.json` also saves the timings for the leaderboard
COST_JSON ?=
# optional-dependency groups installed into .venv; CI adds the Ray launcher's (EXTRAS=test,ray)
EXTRAS ?= test

.PHONY: install test bench leaderboard reproduce cost-benchmark verify-data clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# the side-by-side cost refuses a measurement that disagrees with itself (a busy machine); the
# leaderboard is written either way, with the cost columns of the files that exist
bench: $(STAMP)
	$(BIN)/python -m uqbench run --suite $(SUITE) --results $(RESULTS) --jobs $(JOBS)
	-$(BIN)/python -m uqbench cost --suite $(SUITE) --results $(RESULTS)
	$(BIN)/python -m uqbench leaderboard --results $(RESULTS)

leaderboard: $(STAMP)
	$(BIN)/python -m uqbench leaderboard --results $(RESULTS)

reproduce: $(STAMP)
	$(BIN)/python -m uqbench run --suite paper --device auto --results $(RESULTS)
	$(BIN)/python -m uqbench leaderboard --results $(RESULTS)

cost-benchmark: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_cost_benchmark.py --benchmark-enable --benchmark-columns=median,ops --benchmark-sort=name $(if $(COST_JSON),--benchmark-json=$(COST_JSON))

verify-data: $(STAMP)
	$(BIN)/python -m uqbench verify-data

clean-venv:
	rm -rf $(VENV)
