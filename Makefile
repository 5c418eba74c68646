# The two commands of the README:  make sweep  (set up + run the demo sweep)  and  make test.
# make test-fast runs the unit lane only (tests/unit: no Ray, no MLflow store, no jobs, no real training).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: sweep test test-fast test-long setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade --quiet pip
	$(VENV)/bin/pip install -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

sweep: $(STAMP)
	$(VENV)/bin/python jobs/defense_sweep.py --out out/defense_sweep $(ARGS)

# Two pytest-xdist workers (one per core here); tests/conftest.py keeps what shares a fixture or a Ray
# cluster in one group, heaviest groups queued first. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --no-loadscope-reorder)

# Both lanes: tests/unit and tests/integration (every test but the long ones).
test: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python -m pytest $(XDIST) $(PYTEST_ARGS)

# The unit lane alone.
test-fast: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python -m pytest $(XDIST) tests/unit $(PYTEST_ARGS)

# The measurements too long for `make test` (tests marked long), e.g. Gradient Matching over 48 targets.
test-long: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python -m pytest --run-long -m long -s $(PYTEST_ARGS)

clean:
	rm -rf .genlab out mlflow.db mlruns
