# controlplane — two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
CLIENT_STAMP := $(VENV)/.client-$(shell cksum clients/python/pyproject.toml | cut -d' ' -f1)


.PHONY: chromium run test test-embedded test-production lint bench bench-platform soak clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The Python client SDK and cpctl (clients/python), editable, so tests/clients run against the working tree.
$(CLIENT_STAMP): $(STAMP) clients/python/pyproject.toml
	$(BIN)/pip install -q --disable-pip-version-check -e clients/python
	rm -f $(VENV)/.client-*
	touch $(CLIENT_STAMP)

## Set everything up and start the control plane on the embedded default with demo data.
run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py bootstrap
	$(BIN)/python manage.py serve --bind 127.0.0.1:8000

## Set everything up and run every test: embedded pass, then PostgreSQL + Redis pass, then checks.
test: $(STAMP) $(CLIENT_STAMP) chromium
	bash scripts/test.sh

# Browser tests use Debian's chromium; install it when we can (root with apt), else they skip with a reason.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: browser tests will be skipped"; }

test-embedded: $(STAMP) $(CLIENT_STAMP)
	bash scripts/test.sh embedded

test-production: $(STAMP) $(CLIENT_STAMP)
	bash scripts/test.sh production

lint: $(STAMP)
	$(BIN)/ruff check .

## Benchmarks (production mode: gunicorn + PostgreSQL + Redis; installs wrk/nginx/etcd/blackbox from Debian).
bench: $(STAMP)
	bash bench/run_all.sh

bench-platform: $(STAMP)
	$(BIN)/python bench/platform_api.py

## Soak of the embedded default (serve + SQLite + filesystem broker) under the demo load; SOAK_MINUTES=6.
soak: $(STAMP)
	$(BIN)/python bench/soak_embedded.py --minutes $${SOAK_MINUTES:-6}

clean:
	rm -rf var .pytest_cache
