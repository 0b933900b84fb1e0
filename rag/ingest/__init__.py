"""Documents in, chunks and vectors out: ``loaders`` (files -> Documents, one module per format behind
``load_bytes``/``load_path``; one bad file never stops a batch), ``ocr`` (scanned pages and images, RapidOCR's
wheel-shipped ONNX models or tesseract), ``clean`` (noisy text -> paragraphs with offsets into the original;
公文 structure labels), ``chunking`` (sentence-packing chunker that keeps articles apart, chunk ids, pages,
article paths), ``metadata`` (公文 metadata read from the text), ``validity`` (what a document repeals, and
the superseded_by links between documents) and ``embed`` (chunks -> vectors, in length-sorted batches).

May import: ``rag.core``, ``embeddings`` (the Embedder protocol). Writes nothing to disk: ``rag.index`` does
(LibreOffice and tesseract work in temporary folders).
"""
