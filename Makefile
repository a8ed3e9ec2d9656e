# edm-bench: `make run` and `make test` work on a fresh clone (they set everything up).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.edm-bench-installed

.PHONY: setup system-deps run run-drugs test test-slow test-all test-mutants bench gpu-check gpu-check-dry datasets-readme clean

setup: $(STAMP)

# torch is pinned and installed first so that nothing pulls a CUDA build; the
# project install builds the C++ extension (CMake through scikit-build-core).
$(STAMP): pyproject.toml CMakeLists.txt $(wildcard kernels/csrc/*)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,xtb-python]'
	$(BIN)/python -c "import kernels; print('C++ kernels:', 'built' if kernels.cpp_available() else kernels.cpp_unavailable_reason())"
	touch $@

# The main job: baselines and the shipped checkpoint on 100 qm9-xtb test molecules
# (xTB oracle), then the leaderboard of that run.
run: setup
	$(BIN)/edm-bench run
	$(BIN)/edm-bench leaderboard runs/qm9-xtb-test-xtb --out runs/leaderboard

# GEOM-DRUGS under xTB (the study's section 5.2): DRUGS_N seeded molecules of drugs-xtb,
# every split (an evaluation set: nothing trains on it), the baselines and the shipped
# DRUGS family (bench.cards.SHIPPED_CARDS_BY_DATASET: the study's ancestral sampler and
# the deterministic one, n = 20, 30, 50, one seed). Cost: see denoisers/README.md.
# Other denoisers replace the family with DENOISERS="--denoiser CARD ...".
DRUGS_N ?= 50
run-drugs: setup
	$(BIN)/edm-bench run --dataset drugs-xtb --split all -n $(DRUGS_N) --seeds 0 $(DENOISERS) \
	    --out runs/drugs-xtb-all-xtb
	$(BIN)/edm-bench leaderboard runs/drugs-xtb-all-xtb --out runs/leaderboard-drugs

test: setup system-deps
	$(BIN)/python -m pytest -q

# Heavy tests: DFT (pyscf) and slow builds; CI runs them too.
test-slow: setup system-deps
	$(BIN)/python -m pytest -q -m "slow or dft"

# Debian packages some tests use: Chromium (the report and leaderboard pages in a
# browser) and Psi4 (the pyscf-vs-psi4 DFT cross-check). Installed when this runs as
# root with apt-get; elsewhere those tests skip, saying why.
system-deps:
	@missing=""; command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v psi4 >/dev/null || missing="$$missing psi4"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "not installed:$$missing (needs root and apt-get); their tests will skip"; fi

test-all: test test-slow

# Hand-written mutants of the metric and analysis code, each against the tests that
# should notice it (tests/mutants.py); prints the kill rate, exit 1 if one survives.
# About 5 minutes on 2 cores; not part of CI.
test-mutants: setup
	$(BIN)/python -m tests.mutants

# Benchmarks (pytest-benchmark) and the backend table; not part of the tests.
bench: setup
	$(BIN)/python -m pytest -q --benchmark-only tests/kernels/test_bench_egnn.py
	$(BIN)/edm-bench perf

# The GPU check (bench/gpu_check.py): Triton accuracy and speed, ONNX Runtime CUDA,
# gpu4pyscf, into runs/gpu-check/. On a host without CUDA the GPU parts are skipped
# with the reason; `make gpu-check-dry` rehearses every part at toy sizes on the CPU.
# On the GPU image (torch and Triton, no venv): python3 -m bench.gpu_check --out DIR
gpu-check: setup
	$(BIN)/python -m bench.gpu_check --out runs/gpu-check

gpu-check-dry: setup
	$(BIN)/python -m bench.gpu_check --out runs/gpu-check-dry --dry-run

# datasets/README.md = the hand-written head + one generated section per shipped set.
datasets-readme: setup
	{ cat datasets/README.head.md; for d in qm9-xtb drugs-xtb zinc-xtb; do $(BIN)/edm-bench data info $$d --markdown; done; } \
		> datasets/README.md

clean:
	rm -rf build $(VENV) .pytest_cache runs

# The CI regression gate (bench/gate.py): a seeded 20-molecule run with the shipped
# checkpoint (skipped, with a message, until bench.cards.DEFAULT_CARD exists) and
# `perf --quick`, one OpenMP thread each, checked against bench/baseline.yml.
.PHONY: gate baseline-perf baseline-science asv-quick
gate: setup
	$(BIN)/edm-bench gate

# Re-measure the baseline's noise (K = 5 repeats each; value = median,
# tolerance = 4 (speed) or 3 (science) x the sample std; the other part is kept).
baseline-perf: setup
	$(BIN)/edm-bench baseline --part perf --repeats 5

baseline-science: setup
	$(BIN)/edm-bench baseline --part science --repeats 5

# The asv suite once, in the development environment (no environment build).
asv-quick: setup
	$(BIN)/asv machine --yes
	$(BIN)/asv run --quick --show-stderr -E existing:$(abspath $(BIN))/python
