"""Embedding models: one small protocol, one file per implementation, a factory."""
