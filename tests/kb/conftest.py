"""The knowledge base's fixtures: one embedded PostgreSQL for the session (under a fresh folder in /tmp, so that
pgserver's system user can reach it), the real embedding model, and the built-in notes a few tests ingest."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from parallel_r1.config import KBConfig
from parallel_r1.kb.chunking import builtin_corpus
from parallel_r1.kb.embedder import MiniLMEmbedder
from parallel_r1.kb.endpoints import postgres_endpoint, running_postgres

SMALL_CORPUS = ("pointers.md", "fractions.md", "recursion.md", "conditional-probability.md", "git-branches.md")


class FakeEmbedder:
    """Another embedding model (8 dimensions): what a store of MiniLM vectors must refuse."""

    name = "fake/hash-8"
    dimension = 8

    def embed(self, texts, progress=None):
        rows = np.array([[hash((t, i)) % 97 for i in range(8)] for t in texts], dtype=np.float32) + 1
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def kb_root():
    root = Path(tempfile.mkdtemp(prefix="parallel-r1-kb-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def kb_workdir(kb_root):
    """A run directory whose embedded PostgreSQL stays up for the session; `open_kb` on it joins that server."""
    workdir = kb_root / "run"
    with running_postgres(postgres_endpoint(KBConfig(), workdir, env={})):
        yield workdir


@pytest.fixture(scope="session")
def embedder():
    return MiniLMEmbedder(batch_size=32)


@pytest.fixture(scope="session")
def small_corpus() -> list[Path]:
    return [p for p in builtin_corpus() if p.name in SMALL_CORPUS]


@pytest.fixture(autouse=True)
def _no_pg_environment(monkeypatch):
    """The embedded store unless a test says otherwise, whatever PG* variables the host has."""
    for name in ("PGHOST", "PGSERVICE", "PGDATABASE"):
        monkeypatch.delenv(name, raising=False)
