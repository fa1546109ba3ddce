# Two commands set everything up on a fresh machine:
#   make run    install, start local PostgreSQL + Redis (unless DATABASE_URL/REDIS_URL are set),
#               migrate, load the demo business, serve the site with a Celery worker and beat
#   make test   the same set-up, then ruff, import contracts, docker-compose config and pytest
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -n 2

.PHONY: run test install lock services stop clean

run: $(STAMP)
	$(PY) -m config.devstack run

test: $(STAMP)
	$(PY) -m config.devstack test $(PYTEST_ARGS)

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (found %d.%d)" % sys.version_info[:2])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

# Re-resolve the pinned versions after changing dependencies in pyproject.toml.
lock:
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip freeze --exclude-editable | grep -v '^pkg_resources' > requirements.lock

services: $(STAMP)
	$(PY) -m config.devstack services

stop: $(STAMP)
	$(PY) -m config.devstack stop

clean: stop
	rm -rf .local
