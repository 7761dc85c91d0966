"""The vector store interface and its records: passages keyed by the digest of their text, searched by cosine
similarity under metadata filters, every vector tagged with the embedding model that made it."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field

import numpy as np

from parallel_r1.errors import UserFacingError


class KBError(UserFacingError):
    """A knowledge-base problem the user can fix: a store or cache that is missing or unreachable, a model
    mismatch, a file that cannot be ingested."""


def digest_of(text: str) -> str:
    """The key of a passage: its text, whitespace-normalised, hashed; the same text ingested twice is one passage."""
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Passage:
    text: str
    source: str  # the file it came from ("builtin/<name>" for the built-in corpus)
    title: str = ""  # the heading path of its section
    subject: str | None = None  # "programming" | "maths" | anything the corpus uses
    cards: tuple[str, ...] = ()  # scenario card ids it serves
    metadata: dict = field(default_factory=dict)  # whatever else the source carried

    @property
    def digest(self) -> str:
        return digest_of(self.text)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cards"] = list(self.cards)
        d["digest"] = self.digest
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Passage:
        return cls(text=d["text"], source=d["source"], title=d.get("title") or "", subject=d.get("subject"),
                   cards=tuple(d.get("cards") or ()), metadata=dict(d.get("metadata") or {}))


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float  # cosine similarity to the query, in [-1, 1]

    def to_dict(self) -> dict:
        return {"score": self.score, **self.passage.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> Hit:
        return cls(Passage.from_dict(d), float(d["score"]))


@dataclass(frozen=True)
class Filters:
    """Metadata a hit must match; None matches anything."""

    subject: str | None = None
    card: str | None = None
    source: str | None = None

    def key(self) -> str:
        return f"{self.subject or ''}|{self.card or ''}|{self.source or ''}"


@dataclass(frozen=True)
class UpsertResult:
    added: int  # passages new to the store
    unchanged: int  # passages already there (by digest); their metadata is refreshed


class VectorStore(ABC):
    """Passages with their embeddings. A store holds vectors of one embedding model: opening it with another is
    refused (`KBError`) rather than mixing incomparable vectors."""

    model: str
    dimension: int
    table: str  # where its passages are, for messages: a PostgreSQL table, a Weaviate collection
    store_id: str  # unique per store, so that stores sharing one cache never share its entries

    @abstractmethod
    def missing(self, digests: list[str]) -> set[str]:
        """The digests not yet stored."""

    @abstractmethod
    def upsert(self, passages: list[Passage], vectors: dict[str, np.ndarray]) -> UpsertResult:
        """Store passages atomically (all or none); `vectors` holds one row per digest not yet stored."""

    @abstractmethod
    def search(self, vector: np.ndarray, k: int, filters: Filters | None = None) -> list[Hit]:
        """The k passages closest to `vector`, best first."""

    @abstractmethod
    def count(self) -> int:
        """How many passages are stored."""

    @abstractmethod
    def generation(self) -> int:
        """A number that changes whenever the stored passages do (cached results are keyed by it)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections (an embedded server is stopped by its owner, not here)."""
