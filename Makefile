# Thin wrapper over CMake: the two commands a newcomer needs are `make demo` and `make test`.
# CMake is the real build; this file only sequences set-up, configure, build and run.

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
# The tests with threads of their own that `make test-tsan` runs under ThreadSanitizer: ed_par's
# helpers, ed_member shares, the serve loop + compute pool, distill over tcp/ipc against real
# workers and with in-process members on the teacher thread (also in faults), the soak (3 workers x 3 trainers), teacher faults (faults.sh streams less data under
# TSan). resume is left out: its many short runs add nothing threaded that distill and faults do
# not cover, and take 8 minutes under TSan here.
TSAN_TESTS ?= ^(test_par|test_member|e2e_serve|e2e_distill|e2e_soak|e2e_faults)$$
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60

.PHONY: all deps build build-asan build-tsan test test-fast test-asan test-tsan fuzz demo clean help

all: build

help:
	@echo "make demo       install missing Debian packages (as root), build, run the end-to-end demo"
	@echo "make test       install, build, run the test suite in the normal and the ASan+UBSan build"
	@echo "make test-fast  the test suite in the normal build only"
	@echo "make test-tsan  the threaded tests under ThreadSanitizer in $(TSAN_BUILD)/ (any report fails)"
	@echo "make test-slurm deploy/slurm/edistill.sbatch on a one-node Slurm cluster started here (root)"
	@echo "make test-docker the image and the compose stack on a private dockerd started here (root)"
	@echo "make fuzz       build the libFuzzer targets (clang) into $(FUZZ_BUILD)/, run each FUZZ_SECONDS (60) s"
	@echo "make bench      build, then measure (bench/run.sh): writes bench/results.json, prints a table"
	@echo "make experiments  the claims of docs/RESULTS.md, measured (~2 h; EXPERIMENTS_QUICK=1: minutes)"
	@echo "make build      configure and build into $(BUILD)/"
	@echo "make format-check  clang-format --dry-run -Werror over the tree (CI runs it; make format applies it)"
	@echo "make clean      remove the build trees"

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDISTILL_SANITIZE=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

test-fast: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	@cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)

build-tsan: deps
	@cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDISTILL_SANITIZE=thread $(CMAKE_ARGS) >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS)

# Every process a test starts (workers in the background too) writes its reports to
# $(TSAN_BUILD)/tsan-logs/; any report there fails the target, even when the test itself passed.
test-tsan: build-tsan
	@rm -rf $(TSAN_BUILD)/tsan-logs && mkdir -p $(TSAN_BUILD)/tsan-logs
	@cd $(TSAN_BUILD) && EDISTILL_SANITIZER=thread TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp log_path=$(CURDIR)/$(TSAN_BUILD)/tsan-logs/report second_deadlock_stack=1 $(TSAN_OPTIONS)" \
	    ctest --output-on-failure -j $(JOBS) -R '$(TSAN_TESTS)'
	@if ls $(TSAN_BUILD)/tsan-logs/report* >/dev/null 2>&1; then \
	    cat $(TSAN_BUILD)/tsan-logs/report*; echo "ThreadSanitizer reports: see above"; exit 1; fi
	@echo "ThreadSanitizer: no reports"

test: test-fast test-asan

fuzz: deps
	@scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

demo: build
	@scripts/demo.sh $(BUILD)

# A real single-node Slurm cluster (slurm-wlm + munge from Debian, installed when missing) runs the
# sbatch script end to end; about 10 s once installed. Also part of `make test` (tests/e2e/deploy_slurm.sh).
.PHONY: test-slurm
test-slurm: build
	@tests/slurm/run.sh $(BUILD)

# deploy/Dockerfile and docker-compose.yml on a real Docker engine of its own (docker.io, debootstrap
# installed when missing); cached in /var/cache/edistill/docker. Also part of `make test`
# (tests/e2e/deploy_docker.sh).
.PHONY: test-docker
test-docker: deps
	@tests/docker/run.sh

# Installs python3-torch (large) for the PyTorch comparison only when root; otherwise that part is
# skipped with the reason in the table.
# The method's claims measured (issue 14): members, target stores, every student row of
# docs/RESULTS.md (about 2 h 10 min on this 2-core machine; cached: an interrupted run continues).
# EXPERIMENTS_QUICK=1: the same list at a tiny scale in a few minutes (docs/RESULTS_QUICK.md).
.PHONY: experiments
experiments: build
	@nice -n 5 /usr/bin/python3 scripts/experiments.py --build $(BUILD)

.PHONY: bench
bench: build
	@BENCH_INSTALL_TORCH=1 bench/run.sh $(BUILD)

# The committed .clang-format is the real style: CI fails on any file that differs from it.
# (proto/onnx/ is vendored and keeps its own layout.)
.PHONY: format format-check
FORMAT_FILES = $(shell git ls-files '*.c' '*.h' | grep -v '^proto/onnx/')
format:
	@clang-format -i $(FORMAT_FILES)
format-check:
	@clang-format --dry-run -Werror $(FORMAT_FILES)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
