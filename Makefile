# ramp: two commands set everything up. `make test` builds .venv on first use.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# pip prints a warning per package for this machine's missing local index folders; hide only those.
QUIET_PIP := grep -v "is ignored: it is neither a file nor a directory" || true
STAMP  := $(VENV)/.ramp-installed
PYTEST_ARGS ?=

.PHONY: help setup quickstart system-deps lerobot-env test test-fast lint format bench bench-quick clean

help:
	@echo "make quickstart  the whole loop on this machine (MetaWorld, tiny models, ~20 min on 2 CPUs)"
	@echo "make setup       build $(VENV) with the pinned dependency set (constraints.txt)"
	@echo "make test        set up if needed, then run the whole suite (slow tests included)"
	@echo "make test-fast   skip tests marked slow (quick local loop)"
	@echo "make lerobot-env build .venv-lerobot (Python 3.12 + lerobot) for the LeRobot tests"
	@echo "make lint        ruff check + format check"
	@echo "make bench       run every benchmark (JSON results under benchmarks/results/)"

setup: $(STAMP)

# Rebuilt when the pins or the project metadata change. torch is installed first and on its own:
# on a CPU-only machine with a local CPU wheel pip takes that one, and nothing later can drag in a
# CUDA build (the constraints file pins the same version).
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> installing into $(VENV) (first time: a few minutes)"
	@$(BIN)/python -m pip install -q --upgrade "pip>=24" 2>&1 | $(QUIET_PIP)
	@$(BIN)/python -m pip install -q "torch==$$(sed -n 's/^torch==//p' constraints.txt)" 2>&1 | $(QUIET_PIP)
	@$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]" 2>&1 | $(QUIET_PIP)
	@# openpi-client (tests of the /v1/openpi route) declares numpy<2 but runs on numpy 2: no deps
	@$(BIN)/python -m pip install -q --no-deps "openpi-client==$$(sed -n 's/^openpi-client==//p' constraints.txt)" 2>&1 | $(QUIET_PIP)
	@$(BIN)/python -c "import ramp, torch, ray, pyarrow; print('==> ramp', ramp.__version__, '| torch', torch.__version__, '| ray', ray.__version__, '| pyarrow', pyarrow.__version__)"
	@touch $@

# System packages the tests need: Ceph (a real S3 server, started by the tests themselves).
# Installed with apt-get when run as root; otherwise the S3 tests skip with a hint (fail on CI).
CEPH_PKGS := radosgw ceph-mon ceph-osd
system-deps:
	@if ! command -v radosgw >/dev/null 2>&1 || ! command -v ceph-osd >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "==> installing Ceph ($(CEPH_PKGS)) for the S3 tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends $(CEPH_PKGS) >/dev/null; \
	  else \
	    echo "note: Ceph is not installed (sudo apt-get install $(CEPH_PKGS)); S3 tests will skip"; \
	  fi; \
	fi

# The LeRobot side environment (Python 3.12 + lerobot 0.6.1 with its own torch, pinned by
# constraints-lerobot.txt) for the LeRobot interop tests: built once (~1.5 min, ~5.4 GB), rebuilt
# when the pins change. Without Python 3.12 it prints a note and those tests skip (fail on CI).
LEROBOT_VENV := .venv-lerobot
lerobot-env: setup
	@$(BIN)/python -m ramp.devtools.lerobot_env build --venv $(LEROBOT_VENV)

# The README's main command: demos -> round 0 (stage 1, label, stage 2) -> 2 continual rounds with
# the simulated human -> the final policy served; a closing table. Store: ./ramp-data.
QUICKSTART_ARGS ?=
quickstart: setup
	MUJOCO_GL=egl LP_NUM_THREADS=1 $(BIN)/ramp quickstart $(QUICKSTART_ARGS)

test: setup system-deps lerobot-env
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup system-deps
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check ramp tests
	$(BIN)/ruff format --check ramp tests

format: setup
	$(BIN)/ruff format ramp tests
	$(BIN)/ruff check --fix ramp tests

bench: setup
	@mkdir -p benchmarks/results
	$(BIN)/ramp bench all --json benchmarks/results

bench-quick: setup
	@mkdir -p benchmarks/results
	$(BIN)/ramp bench all --quick --json benchmarks/results

clean:
	rm -rf $(VENV) $(LEROBOT_VENV) .pytest_cache .ruff_cache ramp-data
