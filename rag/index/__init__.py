"""The on-disk index: ``store`` (versioned folders, atomic ``current`` switch, load and checks), ``chunktable``
(chunks.jsonl read in place), ``bm25`` (fit, manifest block, tokenizer check), ``vectors/`` (FAISS and Milvus
behind one protocol), ``build`` (a new index from documents) and ``update`` (add, replace, delete documents).

May import: ``rag.core``, ``embeddings``, ``rag.ingest``. Nothing here knows about queries or answers.
"""
