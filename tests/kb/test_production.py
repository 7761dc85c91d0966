"""The production path: a PostgreSQL and a Redis started from the same binaries as the embedded ones, on loopback
TCP ports, reached through kb.postgres_dsn, the PG* environment and kb.redis_url."""

from __future__ import annotations

import pytest

from parallel_r1.config import KBConfig
from parallel_r1.kb import Passage, open_kb
from tests.kb.servers import postgres_server, redis_server

pytestmark = pytest.mark.kb

NOTES = [Passage("A hash map finds a key's bucket from its hash instead of scanning every key.", "ops", subject="cs"),
         Passage("Long division repeats: divide, multiply, subtract, bring down.", "ops", subject="maths")]


def test_postgres_by_dsn_and_by_environment(kb_root, embedder, monkeypatch):
    with postgres_server(kb_root / "pg_server") as dsn:
        with open_kb(KBConfig(postgres_dsn=dsn, cache=False), kb_root / "unused", embedder) as kb:
            assert kb.ingest(NOTES).added == 2
            assert kb.query("why is dict lookup fast", k=1)[0].passage.subject == "cs"
        port = dsn.rsplit(":", 1)[1].split("/")[0]
        for name, value in {"PGHOST": "127.0.0.1", "PGPORT": port, "PGUSER": "postgres"}.items():
            monkeypatch.setenv(name, value)
        with open_kb(KBConfig(cache=False), kb_root / "unused", embedder) as kb:
            assert kb.ingest(NOTES).unchanged == 2 and kb.store.count() == 2
    assert not (kb_root / "unused" / "kb" / "pg").exists()  # no embedded server was started


def test_redis_by_url(kb_workdir, embedder):
    import redis

    with redis_server() as url:
        with open_kb(KBConfig(table="t_prod", redis_url=url), kb_workdir, embedder) as kb:
            kb.ingest(NOTES)
            first = kb.query("steps of long division", k=1)
            assert kb.query("steps of long division", k=1) == first and kb.cache.hits == 1
        keys = redis.Redis.from_url(url).keys("parallel-r1:kb:*")
        assert len(keys) == 3  # the embedding, the result set and the index
