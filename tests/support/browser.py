"""Headless Chromium (Debian's `chromium` package, installed by `make install` where it can) for page tests: the
DOM after the page rendered, and a screenshot. Without the browser the tests skip, unless
PARALLEL_R1_REQUIRE_BROWSER is set (CI sets it), where they fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = ("headless Chromium is not installed (Debian: apt-get install chromium; `make install` does it as "
                   "root)")
        if os.environ.get("PARALLEL_R1_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _run(url: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium") as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args, url], capture_output=True,
                              text=True, timeout=120, check=True)


def dump_dom(url: str) -> str:
    """The document as Chromium serialises it after loading `url`."""
    return _run(url, "--dump-dom").stdout


def screenshot(url: str, name: str, size: str = "1200,1800") -> Path:
    """A PNG of the page, kept under test-artifacts/ (a test artifact of the run)."""
    ARTIFACTS.mkdir(exist_ok=True)
    out = ARTIFACTS / name
    _run(url, f"--screenshot={out}", f"--window-size={size}")
    return out


class Elements(HTMLParser):
    """Every element's tag and attributes, and the text of each table's cells by table id."""

    def __init__(self, document: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(document)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs))
        if tag == "table":
            self._table = attrs.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def find(self, tag: str, **attrs) -> list[dict]:
        return [a for t, a in self.elements if t == tag and all(a.get(k.rstrip("_").replace("_", "-")) == v
                                                                 for k, v in attrs.items())]

    def rows(self, table: str) -> dict[str, list[str]]:
        """A table's body rows by their first cell."""
        return {r[0]: r for r in self.tables[table][1:] if r}
