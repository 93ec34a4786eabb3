# armada.apparmor — every target works from a fresh clone (Debian 12, root, Python 3.11).
# The virtualenv is rebuilt only when requirements*.txt change (stamp keyed on their hash).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PY        := $(VENV)/bin/python
REQ_HASH  := $(shell cat requirements.txt | sha256sum | cut -c1-16)
STAMP     := $(VENV)/.stamp-$(REQ_HASH)
VENV38    := .venv-py38
REQ38_HASH := $(shell cat requirements-py38.txt | sha256sum | cut -c1-16)
STAMP38   := $(VENV38)/.stamp-$(REQ38_HASH)
COLL_ROOT := $(CURDIR)/build/collections
COLL_LINK := $(COLL_ROOT)/ansible_collections/armada/apparmor
APT_PACKAGES := apparmor apparmor-utils python3-apparmor python3-libapparmor qemu-system-x86 mmdebstrap cpio openssh-client systemd-journal-remote chromium chromium-driver
export ANSIBLE_COLLECTIONS_PATH := $(COLL_ROOT)
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := false
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
PYTEST_ARGS ?=

.PHONY: help setup venv apt link lint unit unit-oldest core-matrix test demo bench fuzz clean build tarball-test

help:
	@echo "make demo   - build the qemu lab and run the three journeys on it"
	@echo "make test   - lint, unit, conformance, molecule and lab integration tests"
	@echo "make lint   - ansible-lint (production), ruff, yamllint, ansible-doc"
	@echo "make bench  - benchmarks, written to docs/benchmarks.md"
	@echo "make fuzz   - long hostile-input run (10,000+ cases per kind)"
	@echo "make clean  - remove .venv, build/ and the lab's running guests"

setup: venv apt link $(STAMP38)

venv: $(STAMP)
$(STAMP): requirements.txt
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

# Engine tests also run on the oldest interpreter pyenv offers from 3.8 up (managed hosts).
$(STAMP38): requirements-py38.txt
	@py=$$(scripts/oldest-python.sh) || { echo "no Python >= 3.8 besides the venv's: skipping"; exit 0; }; \
	rm -rf $(VENV38) && $$py -m venv $(VENV38) && \
	$(VENV38)/bin/pip install -q -r requirements-py38.txt && touch $@

apt:
	@scripts/ensure-apt.sh $(APT_PACKAGES)

link:
	@mkdir -p $(dir $(COLL_LINK))
	@ln -sfn $(CURDIR) $(COLL_LINK)

lint: venv link
	scripts/lint.sh
	scripts/core-matrix.sh sanity

# The controller side under the other ansible-core versions we claim (requirements-core-*.txt, docs/decisions.md).
core-matrix: venv link
	scripts/core-matrix.sh tests

unit-oldest: $(STAMP38) link
	@if [ -x $(VENV38)/bin/python ]; then \
	  echo "engine tests under $$($(VENV38)/bin/python --version)"; \
	  PYTHONPATH=$(COLL_ROOT) $(VENV38)/bin/python -m pytest -q -p no:cacheprovider tests/unit/engine; \
	fi

unit: venv link
	$(PY) -m pytest -q tests/unit tests/conformance $(PYTEST_ARGS)

# The checks without a lab (lint, the oldest Python, the other ansible-cores) run beside the lab tests: they use
# about one core and the labs leave some free (scripts/test.sh prints their output after the labs').
checks: lint unit-oldest core-matrix

test: setup
	scripts/test.sh $(PYTEST_ARGS)

demo: setup
	scripts/demo.sh

bench: setup
	$(PY) tests/bench/run.py

fuzz: setup
	ARMADA_FUZZ_EXAMPLES=10000 $(PY) -m pytest -q tests/unit -k fuzz -p no:cacheprovider

build: venv
	$(VENV)/bin/ansible-galaxy collection build --force --output-path build/

clean:
	-[ -x tests/lab/lab ] && tests/lab/lab down
	rm -rf $(VENV) $(VENV38) .venv-core-* build .pytest_cache .ruff_cache .hypothesis

# The qemu lab (tests/lab/lab, docs/lab.md). LAB_HOSTS guests; `make test` and `make demo` boot their own.
LAB_HOSTS ?= 3
.PHONY: lab-build lab-up lab-down lab-status
lab-build: apt
	tests/lab/lab build
lab-up: apt venv link
	tests/lab/lab up $(LAB_HOSTS)
lab-down:
	tests/lab/lab down
lab-status:
	tests/lab/lab status
