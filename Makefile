# StoreWave: `make demo` runs the main job, `make test` runs the tests. Each sets up what
# it needs (venv, install, Cython build, Debian packages when run as root).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.storewave-installed
# libportaudio2: sounddevice; mosquitto: the managed broker; pulseaudio & co: a virtual
# sound card for the real-audio tests (shared/AUDIO.md).
DEB_PACKAGES := libportaudio2 mosquitto pulseaudio pulseaudio-utils alsa-utils libasound2-plugins
PYTEST_ARGS ?=

.PHONY: demo test install sysdeps bench lint clean

demo: sysdeps install
	$(BIN)/storewave demo

test: sysdeps install
	bash tests/run.sh $(PYTEST_ARGS)

bench: install
	$(BIN)/storewave bench all

lint: install
	$(BIN)/ruff check storewave edge hub kiosk firmware_sim ext tests

install: $(STAMP)

$(STAMP): pyproject.toml setup.py $(wildcard ext/*.pyx ext/*.pxd ext/*.pxi)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "StoreWave needs Python >= 3.11 (set PYTHON=...)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -c 'import ext; ext.load_kernel("_goertzel")'
	@touch $(STAMP)

sysdeps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
	  || echo "!!! could not install:$$missing; the suites that need them will say so"; \
	else \
	  echo "!!! missing Debian packages:$$missing"; \
	  echo "!!! install them as root (apt-get install$$missing); the suites that need them will say so"; \
	fi

clean:
	rm -rf build $(VENV) ext/*.c ext/*.so var
