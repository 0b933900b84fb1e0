"""Answers from retrieved hits: ``extractive`` (the default generator, calibrated refusal, ``calibration.json``),
``reader`` / ``reader_en`` (short answer spans), ``citations`` (checking an LLM's [n] markers), ``llm`` (an
OpenAI-compatible client, the local llama.cpp server) and ``answering`` (extractive or LLM mode, streaming).

May import: ``rag.core``, ``embeddings``. Hits arrive as ``rag.core.types.Hit``: nothing here imports
``rag.search`` or ``rag.index``; ``rag.pipeline`` wires them.
"""
