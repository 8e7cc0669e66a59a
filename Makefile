# Prepaid Charge. `make run` runs everything on loopback; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The official Smartcar Node SDK, run against the simulator by tests/system/contract_v3/test_node_sdk.py.
NODE_DIR := tests/system/contract_v3/node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed

.DEFAULT_GOAL := help
.PHONY: help run test test-far-date lint format migrate demo check-python ci clean messages

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null || { \
	  echo "Prepaid Charge needs Python 3.10 or newer (Django 5.2 LTS); '$(PYTHON)' is $$($(PYTHON) --version 2>&1)."; \
	  echo "Install a newer Python (e.g. 'apt-get install python3' on Debian 12+, 'brew install python@3.12'),"; \
	  echo "or point to one: make run PYTHON=/path/to/python3.11"; exit 1; }

$(STAMP): requirements.txt requirements-dev.txt | check-python
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  (cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error) && touch $(NODE_STAMP); \
	else echo "npm not found: the Node SDK check (tests/system/contract_v3) will be skipped; apt-get install nodejs npm"; fi

venv: $(STAMP) $(NODE_STAMP) ## Create the virtualenv and install the dependencies (and the Node SDK check's)

migrate: $(STAMP) ## Apply database migrations
	$(PY) manage.py migrate --noinput

demo: migrate ## Load demo data (operator, driver, packages, simulated vehicles)
	$(PY) manage.py demo_data

run: demo ## Run web server, worker, controller, localstripe and the vehicle simulator on loopback
	$(PY) manage.py runstack

test: $(STAMP) $(NODE_STAMP) ## Run the whole test suite
	$(PY) -m pytest

# The suite again with the wall clock FAR_DATE_DAYS days away (negative: in the past), in pytest and
# in every process it starts (live server, localstripe, simulator, Chromium): a test that passes
# only on the day it was written fails here. .ci/timeshift.c says why not libfaketime.
FAR_DATE_DAYS ?= 400
test-far-date: $(STAMP) $(NODE_STAMP) ## Run the suite with the wall clock moved FAR_DATE_DAYS days (default 400)
	@mkdir -p var
	gcc -shared -fPIC -O2 -o var/timeshift.so .ci/timeshift.c -ldl
	TIMESHIFT_SECONDS=$$(( $(FAR_DATE_DAYS) * 86400 )) LD_PRELOAD=$(CURDIR)/var/timeshift.so $(PY) -m pytest -p no:cacheprovider

lint: $(STAMP) ## ruff lint + format check, import layers (import-linter), migrations up to date
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) manage.py makemigrations --check --dry-run

format: $(STAMP) ## Format the code with ruff
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The translation catalogues (docs/i18n.md): every translatable string of the code and templates into
# locale/<lang>/LC_MESSAGES/django.po, then compiled to the .mo files Django reads. The .mo files are
# committed, so running the project needs no gettext tools; updating them does (apt-get install gettext).
# tests/test_translations.py fails when a catalogue misses a string, German lacks a translation or a
# .mo file is older than its .po.
I18N_IGNORE := --ignore=.venv --ignore=node_modules --ignore=tests --ignore=vehicle_sim --ignore=benchmarks \
	--ignore=var --ignore=staticfiles --ignore=test-artifacts
messages: $(STAMP) ## Update the German and English catalogues (locale/) and compile them
	$(PY) manage.py makemessages -l de -l en --no-location --no-obsolete $(I18N_IGNORE)
	$(PY) manage.py compilemessages -l de -l en $(I18N_IGNORE)

ci: ## What CI runs (.ci/run)
	bash .ci/run

clean: ## Remove the virtualenv and local state
	rm -rf $(VENV) var test-artifacts $(NODE_DIR)/node_modules
