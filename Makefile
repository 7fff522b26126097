# doping — one entry point for setup, demo, tests, RTL, simulation and benches.
# `make test` and `make demo` work from a clean clone: they create the venv and install everything.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DOPING := $(VENV)/bin/doping
STAMP  := $(VENV)/.installed
# Debian packages and a file each installs: Icarus, yosys, OpenSTA, the OSU 0.18 um cell library
SYSTEM_DEPS := iverilog:/usr/bin/iverilog yosys:/usr/bin/yosys opensta:/usr/bin/sta \
               qflow-tech-osu018:/usr/share/qflow/tech/osu018/osu018_stdcells.lib
export AMARANTH_USE_YOSYS := builtin

.PHONY: help setup system-deps test test-slow demo bench clean verilog synth sim sim-full docs report-check scalesim-venv

help:
	@echo "make demo       the main job on embedded defaults: doping demo -o build/demo-rRATIO --ratio RATIO (default 4)"
	@echo "make test       create the venv, install everything, run the whole fast suite"
	@echo "make test-slow  the long regressions (pytest -m slow)"
	@echo "make bench      benchmarks whose results go to docs/results.md"
	@echo "make docs       regenerate docs/cli.md from the CLI"
	@echo "make report-check  render the flow report in headless chromium (installs it as root)"
	@echo "make verilog    generate + lint the accelerator Verilog (CONFIG=default|minimal|large|file)"
	@echo "make synth      yosys cell counts of the accelerator (CONFIG=...)"
	@echo "make sim        cocotb regression subset (Verilator + Icarus), part of make test"
	@echo "make sim-full   the long regression: 105 random shapes, 10,500 vectors"
	@echo "make clean      remove build outputs (keeps the venv)"
	@echo "make scalesim-venv  SCALE-Sim 3.0 in its own venv (numpy < 2) for bench/scalesim_check.py"

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Icarus, yosys, OpenSTA and the OSU library come from Debian: installed when running as root,
# otherwise the exact command is printed and the checks that need them say so when they run.
system-deps:
	@missing=""; for d in $(SYSTEM_DEPS); do [ -e "$${d#*:}" ] || missing="$$missing $${d%%:*}"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing$$missing with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
	  echo "doping: missing$$missing; install them with: sudo apt-get install -y$$missing"; \
	fi

setup: $(STAMP) system-deps

test: setup
	$(PY) -m pytest -q -m "not slow"

test-slow: setup
	$(PY) -m pytest -q -m slow

RATIO ?= 4
demo: setup
	$(DOPING) demo -o build/demo-r$(RATIO) --ratio $(RATIO)

bench: setup
	$(PY) bench/golden_bench.py
	$(PY) bench/dkp_speed.py
	$(PY) bench/rtl_cycles.py
	$(PY) bench/sim_speed.py

# SCALE-Sim 3.0 pins numpy < 2: its own venv, used by bench/scalesim_check.py through a subprocess
SCALESIM_VENV := build/scalesim-venv
scalesim-venv: $(SCALESIM_VENV)/.installed
$(SCALESIM_VENV)/.installed:
	$(PYTHON) -m venv $(SCALESIM_VENV)
	$(SCALESIM_VENV)/bin/pip install --quiet scalesim==3.0.0 "numpy<2"
	touch $@

docs: setup
	$(PY) -m doping.clidoc > docs/cli.md

# Renders the flow report in headless Chromium (Debian's; installed when running as root).
report-check: setup
	@command -v chromium >/dev/null 2>&1 || { if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "doping: install chromium with: sudo apt-get install -y chromium"; exit 1; fi; }
	$(PY) -m pytest -q tests/test_flow.py

clean:
	rm -rf build .pytest_cache .hypothesis

CONFIG ?= default
verilog: setup
	$(DOPING) rtl --config $(CONFIG) --lint -o build/rtl/$(CONFIG)

synth: setup
	$(DOPING) synth --config $(CONFIG) -o build/synth/$(CONFIG)

# cocotb + Verilator (and an Icarus subset): the CI subset, and the long regression
sim: setup
	$(PY) -m pytest -q tests/sim -m "not slow"

sim-full: setup
	$(PY) -m pytest -q tests/sim
