# The README's set-up: `make demo` (the main job) and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build of PyTorch; set TORCH=torch for your platform's default build (e.g. CUDA).
TORCH ?= torch==2.13.0

.PHONY: install demo test lint serve clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev,demo,baselines,metrics,web]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/context-encoder demo --out demo

test: install
	$(BIN)/pytest -q

serve: install
	$(BIN)/context-encoder serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) runs demo .pytest_cache
