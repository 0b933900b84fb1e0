"""The query side of retrieval over one loaded index: ``retrieve`` (dense, BM25, union + RRF fusion),
``crosslingual`` (English questions -> Chinese terms for BM25) and ``rerank`` (the Reranker role, EmbeddingGemma).

May import: ``rag.core``, ``embeddings``, ``rag.index`` (IndexData). The tokenizer is ``rag.core.text``, the one
the index was built with.
"""
