# SPDX-License-Identifier: Apache-2.0
# Entry points. `make demo` and `make test` work on a fresh Debian 12 machine: they run
# `make deps` first, which installs what is missing (Debian packages and .venv).

JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
CLI       := build/release/myriad
DEMO_DIR  ?= demo
DEMO_GROUPS ?= 100000
DEMO_ROWS ?= 50
PYTHON    := .venv/bin/python

.PHONY: all deps build build-asan demo test test-c test-asan test-python test-deploy bench fuzz lint checksrc clean help

all: build

help:
	@echo "make demo    install, build, generate $(DEMO_GROUPS) groups, train them, show results"
	@echo "make test    install, build (release + ASan/UBSan), run every test"
	@echo "make bench   run the benchmarks (linear and forest vs scikit-learn, Arrow vs CSV; slow)"
	@echo "make build   release build in build/release (CLI: $(CLI))"
	@echo "make deps    install Debian packages and the Python .venv"

deps:
	@scripts/setup.sh

build: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

build-asan: deps
	@cmake --preset debug-asan >/dev/null
	@cmake --build --preset debug-asan -j $(JOBS)

demo: build
	@scripts/demo.sh $(CLI) $(DEMO_DIR) $(DEMO_GROUPS) $(DEMO_ROWS)

test-c: build
	ctest --preset release -j $(JOBS)

test-asan: build-asan
	ctest --preset debug-asan -j $(JOBS)

test-python: build
	MYR_CLI=$(abspath $(CLI)) MYR_KNN_PLUGIN=$(abspath $(dir $(CLI))plugins/libmyriad_knn.so) $(PYTHON) -m pytest -q tests/integration tests/python

test-deploy: deps
	@scripts/check-deploy.sh

test: checksrc test-c test-asan test-python test-deploy
	@echo "make test: all tests passed"

bench: build
	MYR_CLI=$(abspath $(CLI)) $(PYTHON) bench/linear_vs_sklearn.py
	MYR_CLI=$(abspath $(CLI)) $(PYTHON) bench/forest_vs_sklearn.py
	MYR_CLI=$(abspath $(CLI)) $(PYTHON) bench/arrow_ingest.py

fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz -j $(JOBS)

checksrc:
	@scripts/checksrc.sh

# Static analysis beyond the compiler's warnings (cppcheck from Debian's packages).
lint: checksrc build
	cppcheck -q --error-exitcode=1 --enable=warning,performance,portability --std=c11 \
	  --inline-suppr --suppress=missingIncludeSystem -I include -I src src tools

clean:
	rm -rf build $(DEMO_DIR)
