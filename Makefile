# ironlog — developers and CI run the same targets.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck pytest bench clean install docs serve sysdeps

# Debian packages the tests drive as real peers: rsyslog (+ its OpenSSL TLS
# driver) forwards to the syslog listeners, util-linux's logger sends to them;
# SoftHSM2 is the PKCS#11 token the HSM signer is tested against; systemd
# gives systemd-analyze, which checks deploy/ironlog.service; chromium (its
# headless shell) is the real browser the console tests drive with Playwright
# (never `playwright install`: no browser is downloaded); PostgreSQL is the
# database the PostgreSQL driver is tested against (tests/pg.py starts its own
# cluster with initdb/pg_ctl as the postgres user).
DEBS := rsyslog rsyslog-openssl bsdutils softhsm2 systemd chromium chromium-headless-shell \
	postgresql

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[server,client,test,bench]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy src

sysdeps:
	@dpkg -s $(DEBS) >/dev/null 2>&1 || { \
	  echo "installing Debian packages: $(DEBS)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBS) >/dev/null; }

pytest: $(STAMP) sysdeps
	$(BIN)/pytest -q

test: lint typecheck pytest

# make serve [HOST=0.0.0.0] [PORT=9000] [DATA=/var/lib/ironlog]
HOST ?= 127.0.0.1
PORT ?= 8080
DATA ?= data

serve: $(STAMP)
	$(BIN)/ironlog --data $(DATA) serve --host $(HOST) --port $(PORT)

bench: $(STAMP)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

docs: $(STAMP)
	COLUMNS=100 $(BIN)/python scripts/gen_cli_docs.py > docs/cli.md
