# One check command. `make check` runs what CI runs minus the slow training runs; `make test` is
# scripts/test.sh, the README's and CI's command (the whole suite). Tools come from ./.venv: make it
# with `make venv` (or `bash scripts/test.sh` once). Any tool can be overridden: `make check RUFF=ruff`.
#
# No `ruff format --check` yet: the code predates the formatter (most files would be rewritten), so
# adopting it is one reformatting commit of its own, not part of every check.

VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
RUFF ?= $(VENV)/bin/ruff
MYPY ?= $(VENV)/bin/mypy
LINT_IMPORTS ?= $(VENV)/bin/lint-imports
# Checked under their installed names (scripts/mypy.sh says why); scripts/test.sh checks the same.
MYPY_PACKAGES ?= core store tui
PYTEST_ARGS ?=

.PHONY: check lint typecheck imports fast test venv messages

check: lint typecheck imports fast

lint:
	$(RUFF) check core store tui tests bench

typecheck:
	MYPY=$(MYPY) bash scripts/mypy.sh $(MYPY_PACKAGES)

# The layering contracts: pyproject.toml [tool.importlinter], ARCHITECTURE.md "Layers".
imports:
	$(LINT_IMPORTS) --no-cache --no-logo

fast:
	$(PYTHON) -m pytest -m "not slow" $(PYTEST_ARGS)

test:
	bash scripts/test.sh $(PYTEST_ARGS)

venv:
	bash scripts/venv.sh train,test,nvidia

# The Chinese catalog after changing messages: add new msgids to the .po (translate them there), then
# `make messages` again to compile the .mo. tests/test_i18n.py fails until both are done.
messages:
	$(PYTHON) scripts/i18n.py extract
	$(PYTHON) scripts/i18n.py compile
