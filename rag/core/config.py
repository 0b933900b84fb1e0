"""Settings: one pydantic-settings class, read from env vars prefixed RAG_ (and .env)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    index_dir: Path = Field(ROOT / "data" / "index", description="Where the index lives (versions + current)")
    models_dir: Path = Field(ROOT / ".cache" / "models", description="Installed embedding models")
    embedder: str = Field("sbert", description="sbert | hash (hash is a tiny deterministic test embedder)")
    model_name: str = Field("multilingual-e5-small", description="Folder name under models_dir, or a path")
    dtype: str = Field("auto", description="auto | bfloat16 | float32. auto = bf16 only on CPUs with AMX: "
                                           "with AVX-512 alone fp32 measured 1.6x faster (bench/results)")
    query_backend: str = Field("auto", description="auto | onnx | torch: encoder for queries (auto = ONNX "
                                                   "Runtime when installed: same weights, a few ms per query)")
    embed_precision: Literal["fp32", "int8"] = Field("fp32", description="fp32 | int8: int8 = queries and "
                                                     "passages through the ONNX Runtime int8 export (per-channel "
                                                     "dynamic quantisation; quality vs fp32 in "
                                                     "bench/results/int8_quality.md)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto | cpu | cuda: bulk passage "
                                                   "encoding on CUDA when torch sees a device (auto), else CPU")
    batch_size: int = Field(32, ge=1, le=1024)
    torch_threads: int = Field(0, ge=0, description="0 = torch default")

    chunk_size: int = Field(300, ge=50, le=4000, description="Target chunk length in characters")
    chunk_overlap: int = Field(1, ge=0, le=5, description="Sentences repeated between neighbouring chunks")

    vector_store: str = Field("faiss", description="faiss | milvus")
    # The whole index in Milvus (rag/index/milvus_*.py, docs/milvus.md): stateless API replicas over one Milvus
    backend: Literal["files", "milvus"] = Field("files", description="files: versioned folders under index_dir | "
                                                "milvus: every version a Milvus collection behind an alias")
    milvus_uri: str = Field("", description="http(s)://host:19530 (a server), or a path ending in .db "
                            "(milvus-lite in this process)")
    milvus_token: str = Field("", description="user:password or an API key for the Milvus server; never logged")
    milvus_alias: str = Field("rag_index", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,100}$", description="Alias of the "
                              "live version; versions are collections <alias>_v<stamp>")
    milvus_timeout: float = Field(10, gt=0, le=600, description="Seconds per Milvus call: past it a request is a "
                                  "503 naming Milvus, never a hang")
    index_kind: str = Field("auto", description="FAISS index: auto (flat up to 50k, then ivfsq8) | flat | ivfsq8 | "
                                                "hnsw")

    rrf_k: int = Field(60, ge=1, description="RRF constant: score = sum 1/(k + rank)")
    candidate_factor: int = Field(4, ge=1, description="Each retriever returns top_k * factor candidates")
    rerank: Literal["none", "gemma"] = Field("none", description="none | gemma: rerank the fused top-N with "
                                             "EmbeddingGemma-300m (`make gemma`; loaded with the index)")
    judge: Literal["none", "gemma"] = Field("none", description="none | gemma: a second refusal judge for "
                                            "extractive answers: refused when EmbeddingGemma scores every cited "
                                            "sentence below judge_min_cos (`make gemma`)")
    judge_min_cos: float = Field(0.55, ge=-1.0, le=1.0, description="EmbeddingGemma query-sentence cosine an "
                                 "extractive answer needs under judge=gemma (fitted on RGB questions outside the "
                                 "eval sample, CMRC and the seed set)")
    crosslingual: bool = Field(True, description="English questions: translate them into Chinese terms with "
                               "CC-CEDICT for BM25 and sentence ranking (rag/search/crosslingual.py)")
    rerank_top_n: int = Field(20, ge=2, le=200, description="Fused candidates the reranker scores")
    rerank_fusion: Literal["bm25", "hybrid", "model"] = Field("bm25", description="bm25: RRF of BM25 rank and "
                                                              "reranker rank | hybrid: of hybrid rank and "
                                                              "reranker rank | model: reranker alone")
    include_superseded: bool = Field(False, description="Answer from superseded and expired documents too "
                                     "(each cited one flagged); false = documents in force only "
                                     "(rag/core/docmeta.py); per request: include_superseded")
    max_query_chars: int = Field(1000, ge=10)
    max_top_k: int = Field(100, ge=1)

    reader: Literal["model", "rules"] = Field("rules", description="rules: the rule generator and reader of "
                                              "rag/answer/extractive.py + reader.py | model: the trained reader + "
                                              "cross-encoder (training/, ONNX in models_dir/reader-e5-small, `make "
                                              "model`); opt-in until it measures better (README, Evaluation)")
    reader_passages: int = Field(5, ge=1, le=20, description="Top passages the trained reader reads")
    reader_margin: float = Field(0.0, ge=-10, le=10, description="Added to the reader's fitted refusal "
                                 "thresholds: > 0 refuses more, < 0 answers more")
    reader_parallel: bool = Field(False, description="The windows of one read run as one group per intra-op "
                                  "thread at once on a single-threaded ONNX session (sorted by length) instead of "
                                  "one batch on all threads (bench/results/reader_cascade.md)")
    reader_t2s: Literal["off", "always", "mismatch"] = Field("off", description="The trained reader reads the "
                                                             "question and passages converted to simplified "
                                                             "characters (OpenCC t2s, offsets kept; a passage "
                                                             "whose length would change is read as given): always, "
                                                             "or only where the question's script differs from the "
                                                             "passage's (mismatch). The answer and the cited "
                                                             "sentence are cut from the original text. Off: DRCD "
                                                             "dev does not gain (bench/results/reader_t2s.md)")
    reader_cascade: int = Field(2, ge=0, le=19, description="Early exit: read the top N passages first and stop "
                                "when their best span clears the refusal threshold by RAG_READER_CASCADE_MARGIN; "
                                "otherwise read the rest and decide over all (answered/refused is always the "
                                "full read's). 0 = off; must be below RAG_READER_PASSAGES. Measured quiet: "
                                "/v1/ask p50 97 against 205 ms (bench/results/ask_latency_reader_quiet.json)")
    reader_cascade_margin: float = Field(6.0, ge=0, le=20, description="How far over the fitted threshold "
                                         "(answer + relevance) the early span must score to stop reading "
                                         "(6: F1 within 0.5 points of the full read on seed, CMRC2018 and RGB, "
                                         "bench/results/reader_cascade.md)")

    @model_validator(mode="after")
    def _cascade_below_passages(self) -> Settings:
        if self.reader_cascade and self.reader_cascade >= self.reader_passages:
            if "reader_cascade" not in self.model_fields_set:  # the default early exit, with fewer passages: off
                self.reader_cascade = 0
                return self
            raise ValueError(f"RAG_READER_CASCADE={self.reader_cascade} must be below RAG_READER_PASSAGES="
                             f"{self.reader_passages} (0 turns the early exit off)")
        return self

    # Refusal: calibrated on eval/gold/seed_gold.jsonl (see eval/calibrate.py)
    min_support: float = Field(0.5, description="Minimum answer-sentence support to answer")

    # LLM answers (rag/answer/llm.py): any OpenAI-compatible endpoint, e.g. `make llm-serve` ->
    # http://127.0.0.1:8081/v1. Empty = no LLM: mode=llm degrades to the extractive answer with a warning.
    llm_base_url: str = Field("", description="OpenAI-compatible base URL including /v1; empty = no LLM")
    llm_model: str = "qwen2.5-1.5b-instruct"
    llm_api_key: str = ""
    llm_timeout: float = Field(30, gt=0, description="Seconds per LLM request (connect and read)")
    llm_retries: int = Field(2, ge=0, le=10, description="Retries on 5xx / timeout / connection errors")
    llm_refusal: bool = Field(True, description="When the LLM reads the retrieved passages and says they hold no "
                                                "answer, answer `answerable: false` (else fall back to extractive)")
    dify_api_key: str = Field("", description="If set, POST /retrieval requires `Authorization: Bearer KEY`")

    # Access control (see api/security.py)
    api_keys: list[str] = Field(default_factory=list, description="Keys for write endpoints (X-API-Key); "
                                "empty = writes allowed from loopback clients only")
    read_keys_required: bool = Field(False, description="Require a key for search/ask too")
    # Principals (api/principals.py, issue 20): named keys with a role and their collections
    keys_file: str = Field("", description="JSON or TOML file of named keys (name, role reader|editor|admin, "
                           "collections, hash); re-read when it changes")
    principals: list[dict[str, Any]] = Field(default_factory=list, description="Named keys as in the keys file "
                                             "(JSON list)")
    public_collections: list[str] | None = Field(None, description="What a request without a key may read when "
                                                 "keys are configured and reads are open; default: every "
                                                 "collection unless a key is scoped to some, then none")
    jwt_jwks_file: str = Field("", description="JWKS file (or https URL) of the identity provider: enables "
                               "Bearer JWTs (api/tokens.py)")
    jwt_issuer: str = Field("", description="Required 'iss' of a JWT")
    jwt_audience: str = Field("", description="Required 'aud' of a JWT")
    jwt_role_claim: str = Field("role", description="Claim holding the role (reader|editor|admin)")
    jwt_collections_claim: str = Field("collections", description="Claim holding the collections (list, or a "
                                       "comma-separated string; '*' = all)")
    max_upload_mb: float = Field(20, gt=0)
    max_body_kb: int = Field(64, gt=0, description="JSON request body limit")
    rate_limit_per_minute: int = Field(600, ge=0, description="Per key (or client IP); 0 = off")
    cors_origins: list[str] = Field(default_factory=list)

    # Observability (api/observability.py)
    log_level: str = Field("", description="api JSON logs (one line per request at INFO); empty = uvicorn's "
                           "--log-level")
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics at GET /metrics")

    host: str = "127.0.0.1"
    port: int = 8000

    # LLM limits (rag/answer/llm.py, issue 21): past any of them mode=llm degrades to the extractive answer
    # with a warning
    llm_deadline: float = Field(60, gt=0, description="Seconds for one LLM answer in all: slot wait, connect, "
                                "first token and the whole reply, retries included (holds while a server drips "
                                "bytes)")
    llm_concurrency: int = Field(4, ge=1, le=256, description="LLM answers generated at once, so LLM calls "
                                 "cannot take every worker thread from search")
    llm_slot_wait: float = Field(2, ge=0, le=60, description="Seconds a request waits for a free LLM slot")
    llm_max_reply_chars: int = Field(20000, ge=100, description="Longest LLM reply read; reading stops past it")

    # Conversations (issue 16): follow-up resolution (rag/answer/conversation.py), storage (rag/conversations.py)
    store_conversations: bool = Field(True, description="Store conversations (turns, rewritten query, answer, "
                                      "citations); false = nothing is stored and conversation_id is refused")
    conversations_db: str = Field("", description="SQLite database file (a path or sqlite:///path); empty = "
                                  "conversations.sqlite3 beside the index folder")
    database_url: str = Field("", description="postgresql://user:password@host:5432/db: conversations, "
                              "feedback, the audit log and upload jobs in PostgreSQL (psycopg 3, pip install -e "
                              "'.[postgres]'); empty = SQLite (RAG_CONVERSATIONS_DB) and RAG_JOBS_DIR")
    conversation_retention_days: float = Field(90, ge=0, description="Conversations not updated for this many "
                                               "days are deleted (checked hourly); 0 = kept forever")
    max_history_turns: int = Field(10, ge=0, le=100, description="Earlier turns a follow-up is resolved "
                                   "against; older ones are dropped with a warning")
    condense: Literal["rules", "llm", "llm-always"] = Field("llm", description="Follow-up rewriting: rules | llm "
                                                            "(an LLM condense step for follow-ups the rules "
                                                            "detect, when an LLM is configured) | llm-always "
                                                            "(every question with history)")
    condense_timeout: float = Field(8, gt=0, le=60, description="Seconds for the LLM condense step; past it the "
                                    "rule rewrite is used")

    # Upload jobs (api/jobs.py, issue 21): big uploads are parsed and indexed in the background
    job_workers: int = Field(1, ge=1, le=16, description="Upload jobs run at once (each parses its files, then "
                             "writes through the index lock)")
    max_queued_jobs: int = Field(20, ge=1, le=10000, description="Jobs queued or running; past it POST "
                                 "/v1/documents?async=true is a 503")
    jobs_dir: str = Field("", description="Job table (jobs.sqlite3) and the spooled upload files; empty = "
                          "<index folder>.jobs beside the index folder; unused with a PostgreSQL "
                          "RAG_DATABASE_URL (both live in the database)")
    job_parse_timeout: float = Field(3600, gt=0, description="Seconds one file of a job may take to parse "
                                     "(RAG_PARSE_TIMEOUT bounds uploads answered in the request)")
    job_attempts: int = Field(2, ge=1, le=10, description="Runs a job gets: one interrupted by a restart is "
                              "resumed until it has had this many, then reported failed")
    job_lease: float = Field(30, ge=1, le=3600, description="With RAG_DATABASE_URL (jobs in PostgreSQL, shared "
                             "by replicas): seconds a server's claim on a running job lasts unrenewed (renewed "
                             "every third of it); past it another server resumes the job")
    async_upload_mb: float = Field(8, gt=0, description="An upload whose files add up to more than this runs "
                                   "as a job (202) even without ?async=true")
    async_ocr_pages: int = Field(8, ge=0, description="An upload whose PDFs and images need OCR on more pages "
                                 "than this (estimated from a sample) runs as a job (202); 0 = never by pages")


def get_settings() -> Settings:
    return Settings()
