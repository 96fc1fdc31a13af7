# citygrid: `make demo` serves the demo city, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install lint typecheck pytest i18n clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "citygrid needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/citygrid demo

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

i18n: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg --project=citygrid --no-wrap -k _ -k gettext_ -k ngettext_:1,2 -o src/citygrid/locale/citygrid.pot src/citygrid
	$(BIN)/pybabel update -i src/citygrid/locale/citygrid.pot -d src/citygrid/locale -D citygrid --no-fuzzy-matching --no-wrap
	$(BIN)/python -c 'from citygrid.kit.i18n import fill_english_catalogue as f; f()'
	$(BIN)/pytest -q --tb=short tests/test_translations.py || echo "Now translate the entries listed above in src/citygrid/locale/zh_CN/LC_MESSAGES/citygrid.po (docs/i18n.md)."

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
