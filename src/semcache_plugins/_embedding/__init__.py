"""Embedding: model resolution, ONNX export, the Embedder, batching, memo."""

__all__: list[str] = []
