"""The peers of bench/peers.py, each built from its own libraries over our chunks and our installed model.

A peer is built (embedding and indexing included) by its constructor and answers ``search(query)`` with
positions into the chunk list it was given, best first. Installed by the ``bench`` extra
(``pip install -e '.[bench]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.core.types import Chunk


class Retriever(Protocol):
    def __init__(self, model_dir: Path, chunks: list[Chunk], k: int) -> None: ...

    def search(self, query: str) -> list[int]: ...


class TxtaiDense:
    """txtai ``Embeddings`` (sentence-transformers + FAISS), e5 prompts as its instructions; txtai's defaults
    otherwise (dense only: txtai's hybrid needs its own BM25 over content it stores)."""

    def __init__(self, model_dir: Path, chunks: list[Chunk], k: int) -> None:
        from txtai import Embeddings

        self.k = k
        self.emb = Embeddings({"path": str(model_dir), "method": "sentence-transformers", "content": False,
                               "instructions": {"query": "query: ", "data": "passage: "}, "backend": "faiss"})
        self.emb.index([(i, c.embed_text(), None) for i, c in enumerate(chunks)])

    def search(self, query: str) -> list[int]:
        return [int(i) for i, _ in self.emb.search(query, self.k)]


def _e5_embeddings(model_dir: Path) -> Any:
    """A langchain ``Embeddings`` over the installed sentence-transformers folder with the e5 prompts (what
    Chatchat's embedding adapters do for a local model; langchain-community's ``HuggingFaceEmbeddings`` would
    give queries and passages the same prompt)."""
    from langchain_core.embeddings import Embeddings
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)

    class E5(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            v = model.encode(texts, prompt_name="passage", batch_size=32, normalize_embeddings=True)
            return np.asarray(v).tolist()

        def embed_query(self, text: str) -> list[float]:
            v = model.encode([text], prompt_name="query", normalize_embeddings=True)
            return np.asarray(v[0]).tolist()

    return E5()


class ChatchatEnsemble:
    """Langchain-Chatchat's knowledge-base retriever (``EnsembleRetrieverService.from_vectorstore``): FAISS
    (``normalize_L2=True``) and ``BM25Retriever`` with ``jieba.lcut_for_search``, each top k, fused by
    ``EnsembleRetriever(weights=[0.5, 0.5])``."""

    def __init__(self, model_dir: Path, chunks: list[Chunk], k: int) -> None:
        import jieba
        from langchain_classic.retrievers import EnsembleRetriever
        from langchain_community.retrievers import BM25Retriever
        from langchain_community.vectorstores import FAISS
        from langchain_core.documents import Document

        jieba.setLogLevel(60)
        docs = [Document(page_content=c.embed_text(), metadata={"pos": i}) for i, c in enumerate(chunks)]
        vs = FAISS.from_documents(docs, _e5_embeddings(model_dir), normalize_L2=True)
        dense = vs.as_retriever(search_kwargs={"k": k})
        bm25 = BM25Retriever.from_documents(list(vs.docstore._dict.values()),  # type: ignore[attr-defined]
                                            preprocess_func=jieba.lcut_for_search)
        bm25.k = k
        self.k = k
        self.retriever = EnsembleRetriever(retrievers=[bm25, dense], weights=[0.5, 0.5])

    def search(self, query: str) -> list[int]:
        return [int(d.metadata["pos"]) for d in self.retriever.invoke(query)][: self.k]


PEERS: dict[str, type[Retriever]] = {"txtai": TxtaiDense, "chatchat": ChatchatEnsemble}
