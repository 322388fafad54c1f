# The one way to set up and run l4vip.rollout, locally and in CI.
#   make rehearsal  the main job: a rolling deploy rehearsed on the embedded L4 emulator; report in rehearsal-report/
#                   VARS='{"rehearsal_time_scale": 0.1}' its extra variables, one JSON or YAML mapping (one -e)
#                   ARGS='--tags cleanup' more ansible-playbook arguments, quoted as on a shell command line
#   make test       everything: unit and real-part tests, ansible-test sanity, ansible-lint, build
#   make unit       the unit tests       make integration  the tests against real parts (nginx, HAProxy, SSH hosts)
#   make sanity     ansible-test sanity
#   make lint       ansible-lint         make build    the collection tarball
#   make galaxy     the checks Galaxy runs on an upload (galaxy-importer, antsibull-docs lint) on the tarball
#   make molecule   the roles end to end on loopback (extensions/molecule)
#   make bench      the benchmarks (benchmarks/RESULTS.md); BENCH='reaction rollout slots datapath connections fleet ssh' picks some
#   make mutants    the mutation guard (docs/mutants.md): each listed bug put in a scratch copy must fail its tests;
#                   MUTANTS='timing. health.' picks some by name
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements/dev.txt | cksum | cut -d' ' -f1)
# galaxy-importer pins older libraries than the dev tools: a venv of its own, inside the dev one.
GALAXY_VENV := $(VENV)/galaxy
GALAXY_STAMP := $(GALAXY_VENV)/.installed-$(shell cat requirements/galaxy.txt | cksum | cut -d' ' -f1)
TARBALL := build/l4vip-rollout-$(shell sed -n 's/^version: *//p' galaxy.yml).tar.gz

.PHONY: setup system-deps rehearsal test unit integration sanity lint build galaxy molecule changelog lock lock-galaxy clean docs bench mutants

setup: $(STAMP)

# Both lists pin every package (pip freeze): pip needs no resolver. Bytecode is compiled here, once: where
# PYTHONDONTWRITEBYTECODE is set, nothing would write it later, and every process would compile Ansible anew.
$(STAMP): requirements/dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps --requirement requirements/dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

system-deps:
	@scripts/system-deps.sh

# VARS goes to ansible-playbook as one argument whatever it holds (spaces, quotes, $); ARGS is split by the shell.
rehearsal: setup
	VENV=$(abspath $(VENV)) scripts/rehearsal.sh $(if $(value VARS),-e '$(subst ','\'',$(value VARS))') $(ARGS)

# sanity, lint, build, galaxy and molecule read the tree and write apart (scratch copies, .ansible/, build/, molecule's
# own ANSIBLE_HOME): three at a time - molecule mostly waits on the emulator's health-check intervals, the others compute.
test: setup system-deps
	$(MAKE) --no-print-directory unit integration
	$(MAKE) --no-print-directory --jobs=3 --output-sync=target sanity lint build galaxy molecule

unit: setup
	$(BIN)/pytest tests/unit

# The slowest tests listed at the end: what to look at first when the suite grows.
integration: setup system-deps
	$(BIN)/pytest tests/integration --durations=15

sanity: setup system-deps
	VENV=$(abspath $(VENV)) scripts/ansible-test-sanity.sh

lint: setup
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/ansible-lint --profile production

build: setup
	@mkdir -p build
	$(BIN)/ansible-galaxy collection build --force --output-path build .
	$(BIN)/python scripts/check_build.py $(TARBALL)

$(GALAXY_STAMP): requirements/galaxy.txt
	@test -x $(GALAXY_VENV)/bin/python || $(PYTHON) -m venv $(GALAXY_VENV)
	$(GALAXY_VENV)/bin/pip install --quiet --no-deps --requirement requirements/galaxy.txt
	@rm -f $(GALAXY_VENV)/.installed-* && touch $@

galaxy: build $(GALAXY_STAMP)
	GALAXY_VENV=$(abspath $(GALAXY_VENV)) scripts/galaxy-checks.sh $(TARBALL)

# Molecule builds and installs the collection under ANSIBLE_HOME each run: a scratch dir per checkout.
MOLECULE_HOME ?= $(or $(TMPDIR),/tmp)/l4vip-molecule-$(shell echo $(abspath .) | cksum | cut -d' ' -f1)
molecule: setup
	@mkdir -p $(MOLECULE_HOME)/ansible $(MOLECULE_HOME)/remote_tmp
	PATH=$(abspath $(BIN)):$$PATH ANSIBLE_HOME=$(MOLECULE_HOME)/ansible ANSIBLE_REMOTE_TMP=$(MOLECULE_HOME)/remote_tmp \
	  $(BIN)/molecule test --all

# Not part of `make test`: benchmarks take their time and want the machine to themselves.
# The collection's plugins compiled first, as a collection installed the usual way is after its first run: where
# PYTHONDONTWRITEBYTECODE is set, every task's worker would compile the action plugin and its module_utils anew.
bench: setup system-deps
	$(BIN)/python -m compileall -q plugins
	$(BIN)/python benchmarks/run.py $(BENCH)

# Not part of `make test` either: about ten minutes of test runs, in a scratch copy of the last commit (never in this
# checkout) and, as root, in a network namespace of its own. Rewrites docs/mutants.md's result when it runs every mutant.
mutants: setup system-deps
	$(BIN)/python scripts/mutants.py --report docs/mutants.md $(if $(MUTANTS),--only $(MUTANTS))

# docs/plugins/<name>.md for every module, role and plugin, rendered by ansible-doc; commit the result.
docs: setup
	VENV=$(abspath $(VENV)) scripts/render-plugin-docs.sh

changelog: setup
	$(BIN)/antsibull-changelog lint

lock:
	rm -rf /tmp/l4vip-lock && $(PYTHON) -m venv /tmp/l4vip-lock
	/tmp/l4vip-lock/bin/pip install --quiet --requirement requirements/dev.in
	{ echo "# Generated by 'make lock' from requirements/dev.in: every package pinned, for repeatable venvs."; \
	  /tmp/l4vip-lock/bin/pip freeze; } > requirements/dev.txt

lock-galaxy:
	rm -rf /tmp/l4vip-lock-galaxy && $(PYTHON) -m venv /tmp/l4vip-lock-galaxy
	/tmp/l4vip-lock-galaxy/bin/pip install --quiet --requirement requirements/galaxy.in
	{ echo "# Generated by 'make lock-galaxy' from requirements/galaxy.in: every package pinned, for repeatable venvs."; \
	  /tmp/l4vip-lock-galaxy/bin/pip freeze; } > requirements/galaxy.txt

clean:
	rm -rf $(VENV) build tests/output .pytest_cache .hypothesis
