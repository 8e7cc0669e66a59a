# Prepaid Charge. `make run` runs everything on loopback; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help run test lint format migrate demo check-python ci clean

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

venv: $(STAMP) ## Create the virtualenv and install the dependencies

migrate: $(STAMP) ## Apply database migrations
	$(PY) manage.py migrate --noinput

demo: migrate ## Load demo data (operator, driver, packages, simulated vehicles)
	$(PY) manage.py demo_data

run: demo ## Run web server, worker, controller, localstripe and the vehicle simulator on loopback
	$(PY) manage.py runstack

test: $(STAMP) ## Run the whole test suite
	$(PY) -m pytest

lint: $(STAMP) ## ruff lint + format check, import layers (import-linter), migrations up to date
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) manage.py makemigrations --check --dry-run

format: $(STAMP) ## Format the code with ruff
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

ci: ## What CI runs (.ci/run)
	bash .ci/run

clean: ## Remove the virtualenv and local state
	rm -rf $(VENV) var test-artifacts
