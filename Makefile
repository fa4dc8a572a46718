# sparseae: the two README commands are `make run` and `make test` (the fast tier of the
# tests; `make test-all` is the whole suite, which CI runs). All bootstrap a virtual
# environment in .venv (uv installs into it, pip where uv cannot), so a fresh machine needs
# only Python >= 3.10 (with venv) and make.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= 2
# pytest-xdist workers for the tests ("auto": one per CPU core; 0: no workers, one process).
TEST_JOBS ?= 2
# MLflow UI: loopback only (the store holds everything a run logged).
UI_HOST ?= 127.0.0.1
UI_PORT ?= 5000

.PHONY: run test test-all venv ui lint format report bench clean help

help:
	@echo "make run     set up .venv and run the default experiment (offline)"
	@echo "make test    set up .venv and run the fast tests (unit and step tests, ~1 min)"
	@echo "make test-all  set up .venv and run every test: workflow runs, Slurm, browser (CI)"
	@echo "make ui      serve the MLflow UI for the local store; prints its address once it answers"
	@echo "make report  write report-<config>.html (snakemake --report) after a run"
	@echo "make lint    ruff, snakefmt --check and snakemake --lint"
	@echo "make bench   run the benchmarks under bench/"

# The stamp depends on pyproject.toml so editing dependencies reinstalls. uv (pinned in
# constraints.txt, from PyPI) installs the same pinned packages as pip in a fifth of the time
# (~20 s instead of ~110 s from a fresh clone); where uv cannot be installed or cannot reach
# PyPI, pip does the install.
$(BIN)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10) and "sparseae needs Python >= 3.10")'
	@echo "sparseae: installing the pinned packages into $(VENV) (once; ~20 s with uv, ~2 min with pip)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	( $(BIN)/python -m pip install --quiet -c constraints.txt uv \
	  && $(BIN)/uv pip install --python $(BIN)/python --quiet -c constraints.txt -e '.[test]' ) \
	|| ( echo "uv failed: installing with pip" >&2 \
	  && $(BIN)/python -m pip install --quiet --upgrade pip \
	  && $(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]' )
	touch $@
	@echo "sparseae: $(VENV) is ready"

venv: $(BIN)/.installed

# Another config file merged over config/config.yaml: make run CONFIG=config/stl-t10k.yaml
# (checked first: a missing or broken file gets one message). Extra snakemake arguments:
# ARGS, e.g. make run ARGS=-n for a dry run (no report then). Each config file has its own
# report, report-<file name>.html, so a run with another config keeps the earlier reports; it
# opens on the page the workflow's closing message wrote (results/_report/<file name>.*).
CONFIG ?=
ARGS   ?=
CONFIGFILE = $(if $(CONFIG),--configfile $(CONFIG))
DRYRUN     = $(filter -n --dry-run --dryrun,$(ARGS))
REPORT_NAME = $(basename $(notdir $(or $(CONFIG),config/config.yaml)))
REPORT     = report-$(REPORT_NAME).html
SNAKEMAKE  = PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --profile profiles/default
REPORT_CMD = $(SNAKEMAKE) --cores 1 --report $(REPORT) $(CONFIGFILE) \
	$$(test -f results/_report/$(REPORT_NAME).json && echo --report-metadata results/_report/$(REPORT_NAME).json)

run: $(BIN)/.installed
	$(BIN)/sparseae -q check-config $(CONFIG)
	@$(SNAKEMAKE) --cores $(CORES) $(ARGS) $(CONFIGFILE)
	@$(if $(DRYRUN),true,$(REPORT_CMD) >/dev/null 2>&1 \
		&& echo "  report:  $(REPORT) (open in a browser; one per config file)" \
		|| echo "  ($(REPORT) could not be written; see make report)")

# The tiers are pytest markers (pyproject.toml): `make test` runs the fast tier, `make
# test-all` everything (CI, .ci/run). Extra pytest arguments: PYTEST_ARGS, e.g.
# make test PYTEST_ARGS="-k tracking". A test module's tests stay on one worker in test-all
# (--dist loadfile): its module fixtures run a whole workflow once. Modules are handed out in
# collection order, the longest first (tests/conftest.py, LONGEST_FIRST).
PYTEST_ARGS ?=
PYTEST = PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -n $(TEST_JOBS)

test: $(BIN)/.installed
	$(PYTEST) -m "fast and not full" $(PYTEST_ARGS)

# The Slurm tests (one process, serially: they submit, cancel and wait on jobs of the one-node
# cluster) run beside the others, started first: most of their time is spent waiting for
# Slurm's status polls, which costs no CPU. The extra load only stretches them (their waits
# are bounded by generous timeouts; a slower chunk is easier to cancel in the act). Their
# output goes to SLURM_LOG (under the ignored logs/) and is printed after the others';
# test-all fails if either part fails.
SLURM_LOG ?= logs/test-all-slurm.log
test-all: $(BIN)/.installed
	@mkdir -p $(dir $(SLURM_LOG))
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m slurm $(PYTEST_ARGS) \
		>$(SLURM_LOG) 2>&1 & slurm=$$!; \
	$(PYTEST) --dist loadfile --no-loadscope-reorder -m "not slurm" $(PYTEST_ARGS); others=$$?; \
	wait $$slurm; slurm_status=$$?; \
	echo "== the Slurm tests (pytest -m slurm, run beside the others):"; cat $(SLURM_LOG); \
	test $$others -eq 0 && test $$slurm_status -eq 0

# Serves the UI in the foreground (Ctrl-C stops it); beside it, a watcher waits until the
# server answers (~30 s), then prints each experiment's runs table in the model-training view
# (MLflow 3 opens others in its GenAI view), so no address is printed that does not answer yet.
UI_URL = http://$(UI_HOST):$(UI_PORT)
ui: $(BIN)/.installed
	@echo "starting the MLflow UI (store mlflow.db; about 30 s; Ctrl-C stops it) ..."
	@( for i in $$(seq 600); do \
		$(BIN)/python -c "import urllib.request as u; u.urlopen('$(UI_URL)/health', timeout=2)" \
			2>/dev/null && { echo "MLflow UI on $(UI_URL); open your experiment's runs:"; \
			$(BIN)/sparseae ui-url --tracking-uri sqlite:///$(CURDIR)/mlflow.db --base-url $(UI_URL); \
			exit 0; }; sleep 1; done ) & \
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host $(UI_HOST) --port $(UI_PORT)

report: $(BIN)/.installed
	$(REPORT_CMD)

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench workflow/scripts
	$(BIN)/ruff format --check src tests bench workflow/scripts
	$(BIN)/snakefmt --check Snakefile workflow
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint

format: $(BIN)/.installed
	$(BIN)/ruff format src tests bench workflow/scripts
	$(BIN)/snakefmt Snakefile workflow

bench: $(BIN)/.installed
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf results logs benchmarks .snakemake report.html report-*.html
