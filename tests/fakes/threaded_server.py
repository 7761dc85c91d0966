"""A FastAPI app served by uvicorn in a daemon thread on 127.0.0.1: the base of the fake API servers."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from fastapi import FastAPI


class ThreadedServer:
    """Subclasses set `self.port` (0: any free port) and implement `_app()`; `with server:` serves it."""

    port: int = 0
    _stopping: bool = False

    def _app(self) -> FastAPI:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self):
        if getattr(self, "_thread", None) is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._app(), log_config=None, log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._stopping = False
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"{type(self).__name__}-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError(f"{type(self).__name__} did not start on 127.0.0.1:{self.port}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving (calls held open end at once) and join the thread; the port is released."""
        if getattr(self, "_thread", None) is None:
            return
        self._stopping = True
        self._server.should_exit = True
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise RuntimeError(f"{type(self).__name__} did not stop within 10 s")
        self._thread = self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
