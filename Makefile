# Inside CLIP: the two commands are `make run` (instructor pre-flight) and `make test`.
# Both create .venv and install what is missing through `make install`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install run test unit sync exercises lab fetch clean

# Re-installs only when pyproject.toml changes; a second `make install` is a no-op.
install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev,tests]"
	@touch $@

# Instructor pre-flight: execute every notebook headless, print notebook | mode | seconds | status.
run: install
	$(PY) -m course_utils.preflight

# Unit tests + every notebook under nbval, always in offline mode so results match on every machine.
test: install
	COURSE_OFFLINE=1 $(PY) -m pytest tests notebooks --nbval-lax \
		--ignore=notebooks/exercises -q

unit: install
	COURSE_OFFLINE=1 $(PY) -m pytest tests -q

# Lessons are pairs: notebooks/NN_*.py (edit this) and notebooks/NN_*.ipynb (same cells + executed outputs).
# `sync` brings each pair in line (jupytext --sync: the newer file wins; a lone .py gets its .ipynb), then
# course_utils.exercises strips widget state, writes the Colab badge and setup cell, rewrites the .py from the
# .ipynb and regenerates the student notebooks (stubs instead of solutions, outputs cleared).
LESSONS := $(sort $(basename $(wildcard notebooks/[0-9][0-9]_*.ipynb notebooks/[0-9][0-9]_*.py)))
sync: install
	$(VENV)/bin/jupytext --sync --quiet $(foreach l,$(LESSONS),$(if $(wildcard $(l).ipynb),$(l).ipynb,$(l).py))
	$(PY) -m course_utils.exercises

# The same as `sync` (kept for the old name).
exercises: sync

# Workshops without internet: download and verify every real asset once (CLIP ViT-B/32 and B/16, CIFAR-100) into
# $(COURSE_CACHE) (default ~/.cache/inside-clip); copy that folder to the room's machines.
fetch: install
	$(PY) -m course_utils.assets

lab: install
	$(VENV)/bin/jupyter lab notebooks

clean:
	rm -rf build
