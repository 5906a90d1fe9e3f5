# Two commands do all set-up on a fresh machine (see README.md):
#   make drill   - a real drill on the local target
#   make test    - lint and the test suite (CI runs this)
# Everything is installed on first use; later runs reuse the virtualenv and the provisioning
# cache (Elasticsearch, MinIO, Java live under drdrill's cache directory, not in the repo).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup provision tools images drill stack test lint unit bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "drdrill needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,all]'
	@touch $(STAMP)

setup: $(STAMP)

provision: setup
	$(BIN)/drdrill provision

drill: provision
	$(BIN)/drdrill run

stack: provision
	$(BIN)/drdrill stack up
	$(BIN)/drdrill stack status
	$(BIN)/drdrill stack down

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: setup
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# What the tests look at a report with: a headless Chromium (also `drdrill report --pdf`) and
# poppler's pdftoppm; the containers target's Docker engine and image base maker; promtool (the
# alert rules' tests) and a Pushgateway (the metrics push's tests). All from Debian's packages,
# installed once per machine.
tools:
	@command -v chromium >/dev/null && command -v pdftoppm >/dev/null || { \
		echo "installing chromium and poppler-utils (Debian packages) ..."; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium poppler-utils fonts-dejavu-core >/dev/null; }
	@{ command -v dockerd || test -x /usr/sbin/dockerd; } >/dev/null && command -v mmdebstrap >/dev/null || { \
		echo "installing docker.io and mmdebstrap (Debian packages) for the containers target ..."; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends docker.io mmdebstrap >/dev/null; }
	@{ command -v promtool && { command -v prometheus-pushgateway || test -x /usr/bin/prometheus-pushgateway; }; } \
		>/dev/null || { \
		echo "installing prometheus (for promtool) and prometheus-pushgateway (Debian packages) ..."; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			-o DPkg::Lock::Timeout=600 --no-install-recommends prometheus prometheus-pushgateway >/dev/null; }

# The containers target's images, built into the Docker engine once per machine (an engine is
# started for the build and stopped after it when none was running).
images: provision tools
	$(BIN)/drdrill images build

# The whole suite on the default Elasticsearch (the default run, then the long suites: 3-node
# clusters and a Kubernetes cluster of their own), then the drills and backup/restore tests marked
# es_matrix again on the pinned 8.x (both are provisioned once per machine).
test: provision tools images lint
	$(BIN)/pytest $(PYTEST_ARGS)
	$(BIN)/pytest -m long $(PYTEST_ARGS)
	DRDRILL_ES_VERSION=$$($(BIN)/python -c 'from drdrill.settings import DEFAULT_ES8_VERSION as v; print(v)') \
		$(BIN)/pytest -m es_matrix $(PYTEST_ARGS)

bench: provision
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache reports/*/
