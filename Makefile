# Inside CLIP: the two commands are `make run` (instructor pre-flight) and `make test`.
# Both create .venv and install what is missing through `make install`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install run test unit exercises lab clean

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

# Regenerate the student notebooks (stubs instead of solutions, outputs cleared).
exercises: install
	$(PY) -m course_utils.exercises

lab: install
	$(VENV)/bin/jupyter lab notebooks

clean:
	rm -rf build
