# Pantheon — `make run` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: run serve test faults install lint format worker beat bench fuzz check-deploy clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python requirements.txt requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

# With no DATABASE_URL, `run` serves on the embedded PostgreSQL (var/postgres), stopped when it stops.
EMBEDDED := $(BIN)/python -m pantheon.local_postgres

run: install
	@$(EMBEDDED) -- $(MAKE) --no-print-directory serve

serve: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	HOST=$(HOST) PORT=$(PORT) $(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py runserver --noreload $(HOST):$(PORT)

# pytest exits 5 when it collects nothing: make fails on it like any other failure, and says why.
# `make test` leaves the fault suite (real components stopped mid-run) to `make faults` (pytest.ini).
# DATABASE_URL unset and no server on 127.0.0.1:5432: the suite runs on the embedded PostgreSQL.
test: install
	@echo "$(BIN)/python -m pytest $(PYTEST_ARGS)"; \
	status=0; $(EMBEDDED) --when-no-server -- $(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests (exit 5)" >&2; fi; \
	exit $$status

faults: install
	$(MAKE) --no-print-directory test PYTEST_ARGS="-m faults"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

worker: install
	$(BIN)/celery -A pantheon worker --loglevel=INFO --pool=gevent --concurrency=100

beat: install
	$(BIN)/celery -A pantheon beat --loglevel=INFO

bench: install
	$(BIN)/python -m tools.bench $(BENCH_ARGS)

# schemathesis against the live schema of a served app (PostgreSQL, offline provider): no 5xx.
fuzz: install
	$(BIN)/python -m tools.fuzz_schema $(FUZZ_ARGS)

# Production settings with a throwaway secret; the check connects to no database.
check-deploy: install
	DJANGO_SETTINGS_MODULE=pantheon.settings.production \
	  DJANGO_SECRET_KEY=$$($(BIN)/python -c "import secrets; print(secrets.token_urlsafe(50))") \
	  DJANGO_ALLOWED_HOSTS=pantheon.example.com \
	  DATABASE_URL=$${DATABASE_URL:-postgres://pantheon@127.0.0.1:5432/pantheon} \
	  $(BIN)/python manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) var
