# heatq: `make demo` and `make test` install what is missing, then run.
# Needs Debian (apt) as root for the system tools; everything Python goes into .venv.

VENV      ?= .venv
PY        := $(VENV)/bin/python
APT_PKGS  := iverilog verilator yosys dataset-fashion-mnist g++ gcc make
STAMP     := $(VENV)/.heatq-installed
PYTEST    ?= $(PY) -m pytest
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install apt demo demo-quick test test-slow bench clean

install: apt $(STAMP)

apt:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

$(STAMP): pyproject.toml
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q 'torch==2.13.*'
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

demo: install
	OMP_WAIT_POLICY=PASSIVE $(VENV)/bin/heatq demo --force

demo-quick: install
	$(VENV)/bin/heatq demo --quick --force

test: install
	$(PYTEST) -q -m "not slow"

test-slow: install
	$(PYTEST) -q -m slow

clean:
	rm -rf heatq-out sim_build .pytest_cache
