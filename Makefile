# heatq: `make demo` and `make test` install what is missing, then run.
# Needs Debian (apt) as root for the system tools; everything Python goes into .venv.

VENV      ?= .venv
PY        := $(VENV)/bin/python
APT_PKGS  := iverilog verilator yosys nextpnr-ice40 fpga-icestorm dataset-fashion-mnist g++ gcc make
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

# Two pytest workers (pytest-xdist), one test file each at a time: the suite is mostly
# single-threaded Python, so two cores halve its wall time.
TEST_JOBS ?= 2

test: install
	$(PYTEST) -q -n $(TEST_JOBS) --dist loadfile -m "not slow"

test-slow: install
	$(PYTEST) -q -m slow

# the benches (hours on a small machine; BENCH_JOBS worker processes, default 2): brevitas,
# da4ml and alkaid pinned in pyproject's [bench] extra (they leave the torch build alone)
bench: install
	$(PY) -m pip install -q -e '.[test,bench]'
	OMP_WAIT_POLICY=PASSIVE $(PY) bench/binarize.py --jobs $(or $(BENCH_JOBS),2) --out bench/results
	OMP_WAIT_POLICY=PASSIVE $(PY) bench/accuracy_bits.py --jobs $(or $(BENCH_JOBS),2) \
	  --out bench/results/accuracy_bits
	OMP_WAIT_POLICY=PASSIVE $(PY) bench/hw_cmvm.py --n-vectors 100 --out bench/results/hw_cmvm_run.json \
	  --md bench/results/hw_cmvm_run.md
	test -f heatq-out/run/model.ir.json || $(MAKE) demo
	$(PY) bench/hw_network.py --networks heated --fold none,auto --arith adders,auto --ice40 \
	  --jobs $(or $(BENCH_JOBS),2) --out bench/results/hw_network_run

clean:
	rm -rf heatq-out sim_build .pytest_cache
