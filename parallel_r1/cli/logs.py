"""Logging for one `parallel-r1` command: the `parallel_r1` logger tree's warnings and errors on the terminal (one
line each, on the shared console), and its records from INFO up appended to `<workdir>/logs/<command>.log`.

Everything is set up when the command starts and removed when it ends, so that commands run one after another in
one process (tests, notebooks) neither share nor duplicate handlers.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.markup import escape

from parallel_r1.console import console

PACKAGE = "parallel_r1"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

log = logging.getLogger(__name__)


class TerminalHandler(logging.Handler):
    """WARNING and up as one line on the shared console ("warning: …", "error: …"), never with a traceback (the log
    file has it); a record logged with `extra={"terminal": False}` stays off the terminal."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        if not getattr(record, "terminal", True):
            return
        try:
            label = "[bold red]error:[/]" if record.levelno >= logging.ERROR else "[yellow]warning:[/]"
            console.print(f"{label} {escape(record.getMessage())}", highlight=False, soft_wrap=True)
        except Exception:  # noqa: BLE001 - logging's contract: a failing handler reports, never raises
            self.handleError(record)


class RunLogHandler(logging.FileHandler):
    """Appends to `<workdir>/logs/<command>.log` once the run directory exists; the records logged before are held
    and written then, or dropped when the command ends without one (it failed on its input and wrote nothing)."""

    def __init__(self, workdir: Path, command: str):
        self.workdir = Path(workdir)
        self.held: list[logging.LogRecord] = []
        super().__init__(self.workdir / "logs" / f"{command}.log", encoding="utf-8", delay=True)
        self.setLevel(logging.INFO)
        self.setFormatter(logging.Formatter(FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        self.held.append(record)
        if self.stream is not None or self.workdir.is_dir():
            self._write_held()

    def _write_held(self) -> None:
        Path(self.baseFilename).parent.mkdir(exist_ok=True)
        held, self.held = self.held, []
        for record in held:
            super().emit(record)

    def close(self) -> None:
        with self.lock:
            if self.held and self.workdir.is_dir():  # the run directory appeared after the last record
                self._write_held()
            self.held = []
        super().close()


@dataclass
class _Command:
    name: str
    file: RunLogHandler | None = None
    handlers: list[logging.Handler] = field(default_factory=list)


_current: ContextVar[_Command | None] = ContextVar("parallel_r1_command", default=None)


def active() -> bool:
    """A command's logging is set up (a command called by another, e.g. `finetune --parallel-format`, reuses it)."""
    return _current.get() is not None


@contextmanager
def command_log(name: str) -> Iterator[None]:
    """Route the package's records for the duration of one command (warnings to the terminal; a log file once
    `to_run_directory` is called), log how it ended, then restore the logger as it was."""
    logger = logging.getLogger(PACKAGE)
    command = _Command(name, handlers=[TerminalHandler()])
    previous = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False  # a root handler some library set up would print every warning twice
    logger.addHandler(command.handlers[0])
    token = _current.set(command)
    started, outcome = time.monotonic(), "failed"
    try:
        yield
        outcome = "done"
    except typer.Exit as e:
        outcome = "done" if e.exit_code == 0 else f"exit code {e.exit_code}"
        raise
    except KeyboardInterrupt:
        outcome = "interrupted"
        raise
    finally:
        log.info("%s: %s after %.1f s", name, outcome, time.monotonic() - started)
        _current.reset(token)
        for handler in command.handlers:
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(previous[0])
        logger.propagate = previous[1]


def to_run_directory(workdir: Path) -> None:
    """From now on the running command's records go to `<workdir>/logs/<command>.log`; once per command, a no-op
    outside one."""
    command = _current.get()
    if command is None or command.file is not None:
        return
    command.file = RunLogHandler(workdir, command.name)
    command.handlers.append(command.file)
    logging.getLogger(PACKAGE).addHandler(command.file)
    log.info("%s: started in %s (host %s, pid %d)", command.name, Path(workdir).resolve(), socket.gethostname(),
             os.getpid())
