"""The PostgreSQL + pgvector store: one table of passages with an HNSW cosine index and indexes on the metadata
filters, and a `kb_stores` row per table recording its embedding model, dimension and generation."""

from __future__ import annotations

import json
import logging
import uuid

import numpy as np

from parallel_r1.kb.endpoints import Endpoint
from parallel_r1.kb.store import Filters, Hit, KBError, Passage, UpsertResult, VectorStore

log = logging.getLogger(__name__)

_LOCK_KEY = 0x6B625F7072  # pg_advisory_xact_lock: one schema change at a time across processes

_COLUMNS = "digest, text, title, source, subject, cards, metadata"


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


class PgVectorStore(VectorStore):
    def __init__(self, dsn: str, endpoint: Endpoint, *, table: str, model: str, dimension: int,
                 connect_timeout_s: int = 5, ef_search: int = 64):
        import psycopg

        self.table, self.model, self.dimension = table, model, dimension
        self._where = endpoint.describe()
        try:
            self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout_s)
        except psycopg.Error as e:
            hint = "" if endpoint.url is None else "; check the address, or leave kb.postgres_dsn and PGHOST unset " \
                                                   "for the embedded store"
            raise KBError(f"cannot reach {self._where}: {_first_line(e)}{hint}") from None
        try:
            self._create_schema()
            self._conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(ef_search),))
            self.store_id = self._check_model()
        except BaseException:
            self._conn.close()
            raise

    def _create_schema(self) -> None:
        import psycopg
        from pgvector.psycopg import register_vector

        t = self.table
        try:
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                self._conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as e:
            raise KBError(f"{self._where} has no usable pgvector extension ({_first_line(e)}); install pgvector "
                          f"there, or leave kb.postgres_dsn unset for the embedded store") from None
        register_vector(self._conn)
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            self._conn.execute("CREATE TABLE IF NOT EXISTS kb_stores (name text PRIMARY KEY, store_id text NOT NULL, "
                               "model text NOT NULL, dimension int NOT NULL, generation bigint NOT NULL DEFAULT 0)")
            self._conn.execute(
                "INSERT INTO kb_stores (name, store_id, model, dimension) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (name) DO NOTHING", (t, uuid.uuid4().hex, self.model, self.dimension))
            row = self._conn.execute("SELECT dimension FROM kb_stores WHERE name = %s", (t,)).fetchone()
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t} (digest text PRIMARY KEY, text text NOT NULL, title text NOT NULL, "
                f"source text NOT NULL, subject text, cards text[] NOT NULL, metadata jsonb NOT NULL, "
                f"model text NOT NULL, embedding vector({int(row[0])}) NOT NULL, "
                f"added_at timestamptz NOT NULL DEFAULT now())")
            self._conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_hnsw ON {t} USING hnsw (embedding vector_cosine_ops)")
            self._conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_subject ON {t} (subject)")
            self._conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_source ON {t} (source)")
            self._conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_cards ON {t} USING gin (cards)")

    def _check_model(self) -> str:
        store_id, model, dimension = self._conn.execute(
            "SELECT store_id, model, dimension FROM kb_stores WHERE name = %s", (self.table,)).fetchone()
        if (model, dimension) != (self.model, self.dimension):
            raise KBError(f"table {self.table} in {self._where} holds vectors of {model} ({dimension} dims), not "
                          f"of {self.model} ({self.dimension} dims): set kb.table to another table for this model")
        return store_id

    def missing(self, digests: list[str]) -> set[str]:
        if not digests:
            return set()
        rows = self._conn.execute(f"SELECT digest FROM {self.table} WHERE digest = ANY(%s)", (list(digests),))
        return set(digests) - {r[0] for r in rows}

    def upsert(self, passages: list[Passage], vectors: dict[str, np.ndarray]) -> UpsertResult:
        unique = list({p.digest: p for p in passages}.values())
        added = unchanged = 0
        with self._conn.transaction(), self._conn.cursor() as cur:
            changed = 0
            for p in unique:
                meta = (p.title, p.source, p.subject, list(p.cards), json.dumps(p.metadata, sort_keys=True))
                if p.digest in vectors:
                    vec = np.asarray(vectors[p.digest], dtype=np.float32)
                    if vec.shape != (self.dimension,):
                        raise KBError(f"an embedding of {vec.shape} does not fit table {self.table} "
                                      f"({self.dimension} dims)")
                    cur.execute(f"INSERT INTO {self.table} ({_COLUMNS}, model, embedding) "
                                f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (digest) DO NOTHING",
                                (p.digest, p.text, *meta, self.model, vec))
                    added += cur.rowcount
                    changed += cur.rowcount
                    unchanged += 1 - cur.rowcount
                else:
                    cur.execute(f"UPDATE {self.table} SET title = %s, source = %s, subject = %s, cards = %s, "
                                f"metadata = %s WHERE digest = %s AND (title, source, subject, cards, metadata) "
                                f"IS DISTINCT FROM (%s, %s, %s, %s::text[], %s::jsonb)",
                                (*meta, p.digest, *meta))
                    changed += cur.rowcount
                    unchanged += 1
            if changed:
                cur.execute("UPDATE kb_stores SET generation = generation + 1 WHERE name = %s", (self.table,))
        return UpsertResult(added=added, unchanged=unchanged)

    def search(self, vector: np.ndarray, k: int, filters: Filters | None = None) -> list[Hit]:
        clauses, params = [], []
        if filters is not None:
            for column, value in (("subject", filters.subject), ("source", filters.source)):
                if value is not None:
                    clauses.append(f"{column} = %s")
                    params.append(value)
            if filters.card is not None:
                clauses.append("%s = ANY(cards)")
                params.append(filters.card)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        vec = np.asarray(vector, dtype=np.float32)
        rows = self._conn.execute(
            f"SELECT {_COLUMNS}, 1 - (embedding <=> %s) AS score FROM {self.table} {where} "
            f"ORDER BY embedding <=> %s LIMIT %s", (vec, *params, vec, k)).fetchall()
        return [Hit(Passage(text=r[1], title=r[2], source=r[3], subject=r[4], cards=tuple(r[5]), metadata=r[6]),
                    float(r[7])) for r in rows]

    def count(self) -> int:
        return self._conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0]

    def generation(self) -> int:
        return self._conn.execute("SELECT generation FROM kb_stores WHERE name = %s", (self.table,)).fetchone()[0]

    def close(self) -> None:
        self._conn.close()
