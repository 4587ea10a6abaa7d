"""Image-sequence classifier: an async FastAPI service around an ONNX sequence model."""

from __future__ import annotations

__version__ = "0.1.0"
