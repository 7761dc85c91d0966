"""The knowledge base as the stages use it: a vector store, the embedding model and the read cache behind
`ingest` and `query`, opened from the config with `open_kb`."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parallel_r1.config import KBConfig
from parallel_r1.kb.cache import ReadCache, open_cache
from parallel_r1.kb.embedder import Embedder, MiniLMEmbedder
from parallel_r1.kb.endpoints import postgres_endpoint, running_postgres, weaviate_endpoint
from parallel_r1.kb.postgres import PgVectorStore
from parallel_r1.kb.store import Filters, Hit, Passage, UpsertResult, VectorStore

log = logging.getLogger(__name__)


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class IngestResult:
    passages: int  # distinct passages in the input
    added: int
    unchanged: int
    embedded: int  # texts the model embedded (those not stored yet)


class KnowledgeBase:
    def __init__(self, store: VectorStore, embedder: Embedder, cache: ReadCache):
        self.store, self.embedder, self.cache = store, embedder, cache

    def ingest(self, passages: list[Passage], progress: Callable[[int], None] | None = None) -> IngestResult:
        """Embed the passages the store lacks and store them all in one transaction (all or none)."""
        unique = list({p.digest: p for p in passages}.values())
        missing = self.store.missing([p.digest for p in unique])
        new = [p for p in unique if p.digest in missing]
        vectors = self.embedder.embed([p.text for p in new], progress) if new else np.zeros((0, 1))
        result: UpsertResult = self.store.upsert(unique, {p.digest: v for p, v in zip(new, vectors, strict=True)})
        return IngestResult(passages=len(unique), added=result.added, unchanged=result.unchanged, embedded=len(new))

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Query embeddings, from the cache where it has them; the model embeds the rest in one batched call."""
        keys = [f"emb:{self.embedder.name}:{_text_key(t)}" for t in texts]
        rows: list[np.ndarray | None] = []
        for key in keys:
            raw = self.cache.get(key)
            vec = np.frombuffer(raw, dtype=np.float32) if raw is not None else None
            rows.append(vec if vec is not None and vec.shape == (self.embedder.dimension,) else None)
        todo = [i for i, row in enumerate(rows) if row is None]
        if todo:
            fresh = self.embedder.embed([texts[i] for i in todo])
            for i, vec in zip(todo, fresh, strict=True):
                rows[i] = vec
                self.cache.put(keys[i], np.asarray(vec, dtype=np.float32).tobytes())
        return np.stack(rows) if rows else np.zeros((0, self.embedder.dimension), dtype=np.float32)

    def query_many(self, texts: list[str], k: int = 5, filters: Filters | None = None) -> list[list[Hit]]:
        """The k best passages for each text, best first; result sets are cached until the store changes."""
        generation = self.store.generation()
        keys = [f"res:{self.store.store_id}:{generation}:{k}:{(filters or Filters()).key()}:"
                f"{_text_key(t)}" for t in texts]
        results: list[list[Hit] | None] = []
        for key in keys:
            raw = self.cache.get(key)
            results.append(None if raw is None else [Hit.from_dict(h) for h in json.loads(raw)])
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:
            vectors = self.embed_queries([texts[i] for i in todo])
            for i, vec in zip(todo, vectors, strict=True):
                hits = self.store.search(vec, k, filters)
                results[i] = hits
                self.cache.put(keys[i], json.dumps([h.to_dict() for h in hits]).encode())
        return results

    def query(self, text: str, k: int = 5, filters: Filters | None = None) -> list[Hit]:
        return self.query_many([text], k, filters)[0]


@contextmanager
def open_store(cfg: KBConfig, workdir: Path, embedder: Embedder) -> Iterator[VectorStore]:
    """The store `kb.store` names, reached (an embedded PostgreSQL started), its schema created and its model checked
    against the embedder's; closed on exit. The Weaviate client is imported only when that store is chosen."""
    if cfg.store == "weaviate":
        from parallel_r1.kb.weaviate_store import WeaviateStore

        store = WeaviateStore(weaviate_endpoint(cfg), table=cfg.table, model=embedder.name,
                              dimension=embedder.dimension, grpc_port=cfg.weaviate_grpc_port,
                              connect_timeout_s=cfg.connect_timeout_s, ef_search=cfg.hnsw_ef_search)
        try:
            yield store
        finally:
            store.close()
        return
    endpoint = postgres_endpoint(cfg, workdir)
    with running_postgres(endpoint) as dsn:
        store = PgVectorStore(dsn, endpoint, table=cfg.table, model=embedder.name, dimension=embedder.dimension,
                              connect_timeout_s=cfg.connect_timeout_s, ef_search=cfg.hnsw_ef_search)
        try:
            yield store
        finally:
            store.close()


@contextmanager
def open_kb(cfg: KBConfig, workdir: Path, embedder: Embedder | None = None) -> Iterator[KnowledgeBase]:
    """The configured knowledge base: its store opened (`open_store`) and the cache; all released on exit."""
    embedder = embedder or MiniLMEmbedder(cfg.embed_batch_size)
    with open_store(cfg, workdir, embedder) as store, open_cache(cfg, workdir) as cache:
        yield KnowledgeBase(store, embedder, cache)
