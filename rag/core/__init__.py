"""The base layer: plain records (``types``), typed errors (``errors``), ``Settings`` (``config``) and the
text normalisation and tokenizer every layer matches with (``text``: the BM25 build in ``rag.index`` and the
query in ``rag.search`` must use the same one, so it lives here).

May import: nothing of ours (third-party only). Everything else may import it, ``embeddings/`` included.
"""
