# Two commands for a fresh machine: `make demo` and `make test` (each sets up .venv first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: demo test test-fast test-captum08 lint format bench venv clean docs tutorials

$(STAMP): pyproject.toml requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet -c requirements-dev.txt -e ".[dev,text]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/captum-simec demo --out demo_output

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint $(DOCS_STAMP)
	$(BIN)/python -m pytest -q
	$(MAKE) test-captum08
	$(MAKE) docs

# The attribution and geometry tests again against the oldest supported Captum (0.8.0),
# installed beside the development one and put first on the path.
CAPTUM08 := $(VENV)/captum-0.8.0
test-captum08: $(STAMP)
	test -d $(CAPTUM08) || $(BIN)/python -m pip install --quiet --no-deps --target $(CAPTUM08) captum==0.8.0
	PYTHONPATH=$(CAPTUM08) $(BIN)/python -c "import captum; assert captum.__version__ == '0.8.0'"
	PYTHONPATH=$(CAPTUM08) $(BIN)/python -m pytest -q --fast -p no:cacheprovider tests/attr tests/geometry

# Skips the tests marked slow (paper reproductions, tutorials); CI runs everything.
test-fast: lint
	$(BIN)/python -m pytest -q --fast

# The docs extra (Sphinx, MyST, Furo; jupytext, nbclient, ipykernel) for `docs` and `tutorials`.
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c requirements-dev.txt -e ".[dev,text,docs]"
	touch $(DOCS_STAMP)

# The API reference in docs/_build/html (fresh each time; a warning fails the build).
docs: $(DOCS_STAMP)
	$(BIN)/python -m sphinx -E -W --keep-going -q -b html docs docs/_build/html
	@echo "open docs/_build/html/index.html"

# Executed notebooks tutorials/*.ipynb from the percent scripts (commit them), then the check
# that each matches its script.
tutorials: $(DOCS_STAMP)
	$(BIN)/python docs/build_notebooks.py
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_notebooks.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache docs/_build docs/api
