# Cabinet's everyday commands. `make run` and `make test` are all a newcomer needs.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Touched after a successful install: the venv is rebuilt only when pyproject.toml changes.
STAMP  := $(VENV)/.installed

LOCALE_DIR := server/locale
POT        := $(LOCALE_DIR)/cabinet.pot
LOCALES    := fr en

.DEFAULT_GOAL := help
.PHONY: help run test lint bench messages venv

help:
	@echo "make run       the app with demo data on http://127.0.0.1:8000"
	@echo "make test      all tests (DATABASE_URL / BROADCAST_URL select PostgreSQL / Redis)"
	@echo "make lint      ruff check, ruff format --check, mypy"
	@echo "make bench     the realtime benchmark"
	@echo "make messages  extract translatable strings and update the fr and en catalogs"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/cabinet run

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	@if [ -f bench/realtime.py ]; then \
		$(BIN)/python bench/realtime.py; \
	else \
		echo "No benchmark exists yet (bench/realtime.py is missing)."; \
	fi

messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg --no-default-keywords \
		-k _ -k gettext -k ngettext:1,2 -k lazy \
		--sort-by-file --project=Cabinet --copyright-holder="Cabinet contributors" \
		-o $(POT) .
	@for locale in $(LOCALES); do \
		$(BIN)/pybabel update -i $(POT) -d $(LOCALE_DIR) -D cabinet -l $$locale --ignore-obsolete || exit 1; \
	done
	@echo "Now translate the new or fuzzy entries in $(LOCALE_DIR)/fr/LC_MESSAGES/cabinet.po."
