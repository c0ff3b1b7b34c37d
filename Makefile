# Thin wrapper; CMake does the building. `make run` and `make test` install what they need.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
# Seconds per fuzz target: `make fuzz` (long run), and the smoke run inside `make test` (9 targets,
# so FUZZ_SMOKE_SECONDS=30 costs about 6 minutes for the 12 targets).
FUZZ_SECONDS       ?= 300
FUZZ_SMOKE_SECONDS ?= 30
JOBS       ?= $(shell nproc)

.PHONY: all deps build build-asan build-fuzz run test test-plain test-asan fuzz fuzz-smoke bench bench-smoke clean

all: build

deps:
	@deploy/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGW_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DGW_SANITIZE=ON -DGW_WERROR=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

# libFuzzer targets (tests/fuzz/README.md), clang only, in their own build dir.
build-fuzz:
	@deploy/install-deps.sh --test
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGW_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS)

run: build
	@deploy/run-demo.sh

# Everything: unit, integration and conformance tests, plain and under ASan+UBSan, then the
# benchmark harness's smoke run (keeps bench/ working; its figures are not judged, but a run that
# measured nothing fails; smoke output goes to $${TMPDIR:-/tmp}/agate-bench-smoke, not the tree).
test:
	@deploy/install-deps.sh --test
	@$(MAKE) --no-print-directory test-plain test-asan fuzz-smoke bench-smoke

test-plain: build
	@cd $(BUILD) && ctest --output-on-failure -j2

test-asan: build-asan
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  AGATE_TEST_SANITIZED=1 ctest --output-on-failure -j2

fuzz: build-fuzz
	@tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

fuzz-smoke: build-fuzz
	@tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SMOKE_SECONDS)

bench: build
	@deploy/install-deps.sh --bench
	@bench/run.sh
	@bench/lb_cost.sh
	@bench/tables_cost.sh

bench-smoke: build
	@deploy/install-deps.sh --bench
	@BENCH_SMOKE=1 bench/run.sh
	@BENCH_SMOKE=1 bench/lb_cost.sh
	@BENCH_SMOKE=1 bench/tables_cost.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
