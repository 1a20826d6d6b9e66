# signed-config: `make run` starts the whole local stack, `make test` runs every test.
# Each target creates/uses the local virtualenv (.venv) and installs what it needs, idempotently.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA_DIR ?= ./data
MQTT_PORT ?= 1883
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

NPM ?= npm
.PHONY: run test bench lint init clean help editor

help:
	@echo "make run    - start mosquitto, the config manager (http://127.0.0.1:8081) and both workers"
	@echo "make test   - run the whole test suite (real mosquitto, SQLite, HTTP and Whisper)"
	@echo "make bench  - run the benchmarks (ratios against mosquitto and etcd in the same run)"
	@echo "make lint   - ruff, mypy --strict, and the editor's vue-tsc and eslint"
	@echo "make editor - build the web editor (editor/, Vue 3 + TypeScript) into config_manager/static"

# --- virtualenv -------------------------------------------------------------
$(VENV)/bin/activate:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "python3-venv is missing: installing it with apt-get"; \
	    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); \
	  else echo "Python's venv module is missing: run 'sudo apt-get install -y python3-venv'"; exit 1; fi; }
	@$(PY) -m pip install -q --upgrade pip

# One stamp per extra set; a change to pyproject.toml reinstalls.
$(VENV)/.installed-run: pyproject.toml | $(VENV)/bin/activate
	$(PY) -m pip install -q -e '.[manager,stt,orchestrator]' --config-settings editable_mode=compat
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/activate
	$(PY) -m pip install -q -e '.[dev]' --config-settings editable_mode=compat
	@touch $@ $(VENV)/.installed-run

# --- system packages ----------------------------------------------------------
# mosquitto (broker, mosquitto_sub/_pub): installed with apt-get when we are root.
define need_deb
	@if ! command -v $(1) >/dev/null 2>&1 && [ ! -x /usr/sbin/$(1) ] && [ ! -x /usr/bin/$(1) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "$(1) is missing: installing $(2) with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
	  else echo "$(1) is missing: run 'sudo apt-get install -y $(2)'"; exit 1; fi; \
	fi
endef

.PHONY: mosquitto rabbitmq etcd chromium
mosquitto:
	$(call need_deb,mosquitto,mosquitto mosquitto-clients)
	$(call need_deb,mosquitto_sub,mosquitto-clients)

# RabbitMQ with its MQTT plugin: the second broker of the test matrix (tests/brokers.py
# runs it as a temporary node on free loopback ports; nothing starts the system service).
rabbitmq:
	$(call need_deb,rabbitmq-server,rabbitmq-server)

etcd:
	$(call need_deb,etcd,etcd-server)

# Headless Chromium for the web editor's browser test.
chromium:
	$(call need_deb,chromium,chromium)

# --- web editor -----------------------------------------------------------------
# editor/ (Vue 3 + TypeScript + Vite) is built into config_manager/static/, which the
# manager serves at /. The bundle is a build artefact (gitignored), rebuilt when a source
# changes; it needs Node 20 and npm (in the image; never Debian's nodejs/npm over it).
EDITOR_SRC := $(shell find editor/src editor/index.html editor/vite.config.ts editor/tsconfig*.json -type f 2>/dev/null)

editor/node_modules/.package-lock.json: editor/package-lock.json editor/package.json
	@command -v $(NPM) >/dev/null || { echo "npm is missing: the web editor needs Node 20 and npm"; exit 1; }
	cd editor && $(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

config_manager/static/index.html: editor/node_modules/.package-lock.json $(EDITOR_SRC)
	cd editor && $(NPM) run --silent build -- --logLevel warn

editor: config_manager/static/index.html

# --- targets ------------------------------------------------------------------
run: mosquitto editor $(VENV)/.installed-run
	$(PY) -m config_manager.stack --data-dir $(DATA_DIR) --mqtt-port $(MQTT_PORT)

test: mosquitto rabbitmq chromium editor $(VENV)/.installed-dev
	cd editor && $(NPM) test --silent
	$(PY) -m pytest

bench: mosquitto etcd $(VENV)/.installed-dev
	$(PY) -m bench

lint: $(VENV)/.installed-dev editor/node_modules/.package-lock.json
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy config_lib config_manager workers
	cd editor && $(NPM) run --silent typecheck && $(NPM) run --silent lint

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache editor/node_modules config_manager/static
