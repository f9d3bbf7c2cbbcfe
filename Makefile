# twat-cache: every entry point. `make help` lists them.
# On a fresh machine with the Rust toolchain, Python 3.11 and pip, `make demo` and
# `make test` do all the set-up themselves (a virtualenv in .venv with maturin, pytest,
# numpy and the benchmark's anchor libraries).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
PYDIRS := python tests benches examples

.PHONY: help venv build demo test test-all fuzz bench lint package fmt clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

$(STAMP): requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(STAMP) ## Create the virtualenv with the dev tools and anchor libraries

build: $(STAMP) ## Build the extension in release mode into the virtualenv
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH maturin develop --release --quiet

demo: build ## Run the demo: every decorator, cold vs cached, cache_info()
	$(PY) examples/demo.py

test: build ## Build once, then run cargo test, the Rust examples and pytest
	cargo test --workspace
	for e in memory async_memory disk macros; do \
		TWAT_CACHE_DIR=$(abspath target/example-cache) cargo run --quiet -p twat-cache --example $$e || exit 1; \
	done
	$(PY) -m pytest

FUZZ_SECONDS ?= 60
FUZZ_TARGETS := frame row keyhash

# cargo-fuzz on the stable toolchain (RUSTC_BOOTSTRAP lets it pass the sanitizer flag).
fuzz: ## Run each fuzz target (AddressSanitizer) for FUZZ_SECONDS seconds (cargo test runs a short smoke of each)
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cd crates/twat-cache/fuzz && for t in $(FUZZ_TARGETS); do \
		RUSTC_BOOTSTRAP=1 cargo fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; done

test-all: ## Build and run pytest on every supported CPython found (3.10 to 3.13)
	bash scripts/test-all.sh

bench: build ## Benchmark our engines against the anchors, write docs/benchmarks.md
	$(PY) benches/run.py --write docs/benchmarks.md

lint: build ## cargo fmt --check, clippy -D warnings, ruff, mypy, stubtest
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps -p twat-cache -p twat-cache-macros
	$(VENV)/bin/ruff check $(PYDIRS)
	$(VENV)/bin/ruff format --check $(PYDIRS)
	$(VENV)/bin/mypy python/twat_cache tests/test_typing.py
	$(PY) -m mypy.stubtest twat_cache._core --allowlist stubtest-allowlist.txt
	$(MAKE) --no-print-directory package

package: ## cargo package (dry run: packs and builds) the core and macro crates as crates.io would
	cargo package --quiet --allow-dirty -p twat-cache-macros -p twat-cache

fmt: $(STAMP) ## Format Rust and Python code
	cargo fmt --all
	$(VENV)/bin/ruff format $(PYDIRS)
	$(VENV)/bin/ruff check --fix $(PYDIRS)

clean: ## Remove build products and the virtualenv
	cargo clean
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
