"""The knowledge base: passages with their embeddings in a vector store (PostgreSQL + pgvector, embedded by default),
a Redis read cache, `kb ingest` / `kb query`, and the retrieval that grounds prompts (`kb.ground`)."""

from parallel_r1.kb.service import IngestResult, KnowledgeBase, open_kb
from parallel_r1.kb.store import Filters, Hit, KBError, Passage, VectorStore

__all__ = ["Filters", "Hit", "IngestResult", "KBError", "KnowledgeBase", "Passage", "VectorStore", "open_kb"]
