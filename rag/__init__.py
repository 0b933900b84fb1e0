"""Policy-document retrieval and cited question answering."""

__version__ = "0.1.0"
