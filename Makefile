# The two commands of the README:  make sweep  (set up + run the demo sweep)  and  make test.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: sweep test setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade --quiet pip
	$(VENV)/bin/pip install -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

sweep: $(STAMP)
	$(VENV)/bin/python jobs/defense_sweep.py --out out/defense_sweep $(ARGS)

test: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf .genlab out mlflow.db mlruns
