"""The read cache in Redis: query embeddings and result sets, each with a TTL, at most `cache_max_entries` of them
(the oldest evicted first) and none larger than `cache_max_value_bytes`. A cache that fails is skipped with a
warning (and retried after a pause): reads then go to the store, never fail because of the cache."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from parallel_r1.config import KBConfig
from parallel_r1.kb.endpoints import Endpoint, close_redis, redis_client, redis_endpoint

log = logging.getLogger(__name__)

RETRY_AFTER_S = 30.0  # a failed cache is left alone this long before it is tried again


class ReadCache:
    def __init__(self, client, endpoint: Endpoint | None, *, prefix: str = "parallel-r1:kb:", ttl_s: int = 3600,
                 max_entries: int = 10_000, max_value_bytes: int = 256 * 1024):
        self.client, self.endpoint = client, endpoint
        self.prefix, self.ttl_s = prefix, ttl_s
        self.max_entries, self.max_value_bytes = max_entries, max_value_bytes
        self.hits = self.misses = self.errors = 0
        self._down_until = 0.0

    @property
    def enabled(self) -> bool:
        return self.client is not None and time.monotonic() >= self._down_until

    @property
    def _index(self) -> str:
        return f"{self.prefix}index"

    def _failed(self, err: Exception) -> None:
        self.errors += 1
        self._down_until = time.monotonic() + RETRY_AFTER_S
        where = self.endpoint.describe() if self.endpoint else "Redis"
        log.warning("kb cache: %s failed (%s); reading uncached for %.0f s", where,
                    str(err).splitlines()[0] if str(err) else type(err).__name__, RETRY_AFTER_S)

    def get(self, key: str) -> bytes | None:
        if not self.enabled:
            return None
        try:
            value = self.client.get(self.prefix + key)
        except Exception as e:  # any client or connection error: the cache is optional
            self._failed(e)
            return None
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, key: str, value: bytes) -> None:
        if not self.enabled or len(value) > self.max_value_bytes:
            return
        full, now = self.prefix + key, time.time()
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(full, value, ex=self.ttl_s)
            pipe.zadd(self._index, {full: now})
            pipe.zremrangebyscore(self._index, "-inf", now - self.ttl_s)  # expired keys leave the index too
            pipe.zcard(self._index)
            size = pipe.execute()[-1]
            if size > self.max_entries:
                evicted = [k for k, _ in self.client.zpopmin(self._index, size - self.max_entries)]
                if evicted:
                    self.client.delete(*evicted)
        except Exception as e:  # any client or connection error: the cache is optional
            self._failed(e)

    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None


@contextmanager
def open_cache(cfg: KBConfig, workdir: Path) -> Iterator[ReadCache]:
    """The configured cache; a disabled one (every read a miss) when kb.cache is off or Redis cannot be reached."""
    endpoint = redis_endpoint(cfg, workdir)
    settings = {"ttl_s": cfg.cache_ttl_s, "max_entries": cfg.cache_max_entries,
                "max_value_bytes": cfg.cache_max_value_bytes}
    if endpoint is None:
        yield ReadCache(None, None, **settings)
        return
    try:
        client = redis_client(endpoint, cfg)
        client.ping()
    except Exception as e:  # the embedded server did not start, or the given Redis is unreachable
        log.warning("kb cache: %s is unavailable (%s); reading uncached", endpoint.describe(),
                    str(e).splitlines()[0] if str(e) else type(e).__name__)
        yield ReadCache(None, endpoint, **settings)
        return
    try:
        yield ReadCache(client, endpoint, **settings)
    finally:
        try:
            close_redis(client)
        except Exception as e:  # the server already went away
            log.debug("kb cache: closing %s: %s", endpoint.describe(), e)
