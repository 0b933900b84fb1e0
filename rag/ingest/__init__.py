"""Documents in, chunks and vectors out: ``loaders`` (files -> Documents, one bad file never stops a batch),
``clean`` (noisy text -> paragraphs with offsets into the original), ``chunking`` (sentence-packing chunker,
chunk ids, page numbers) and ``embed`` (chunks -> vectors, in length-sorted batches).

May import: ``rag.core``, ``embeddings`` (the Embedder protocol). Writes nothing to disk: ``rag.index`` does.
"""
