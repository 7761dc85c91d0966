"""Reading files into passages: Markdown split at its headings, plain text at blank lines, JSONL one row per
document (`text` plus metadata); any piece longer than the limit is cut at word boundaries with an overlap. A file
that is empty, binary or malformed is a `KBError` naming it, raised before anything is stored."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import yaml

from parallel_r1.kb.store import KBError, Passage

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".text", ".jsonl"}
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)


def builtin_corpus() -> list[Path]:
    """The built-in teaching notes (one Markdown file per scenario-card topic)."""
    folder = resources.files("parallel_r1.kb") / "corpus"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".md"))


def expand(paths: list[Path]) -> list[Path]:
    """Files as given, and the text files (.md, .txt, .jsonl) under any folder given, in a stable order."""
    files = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
            if not found:
                raise KBError(f"{path} holds no .md, .txt or .jsonl file to ingest")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise KBError(f"{path} does not exist")
    return files


def split_length(text: str, max_chars: int, overlap: int) -> list[str]:
    """`text` in pieces of at most `max_chars` (a single longer word excepted), cut between words and keeping the
    text's own line breaks; each piece after the first starts with about `overlap` characters of the one before."""
    words = re.findall(r"\S+\s*", text.strip())  # each word with the whitespace after it
    pieces, start = [], 0
    while start < len(words):
        end, size = start, 0
        while end < len(words) and (end == start or size + len(words[end].rstrip()) <= max_chars):
            size += len(words[end])
            end += 1
        pieces.append("".join(words[start:end]).strip())
        if end >= len(words):
            break
        back, kept = end, 0
        while back - 1 > start and kept + len(words[back - 1]) <= overlap:
            back -= 1
            kept += len(words[back])
        start = back
    return pieces


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise KBError(f"{path} is binary, not text: kb ingest reads Markdown, plain text or JSONL")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise KBError(f"{path} is not UTF-8 text (byte {e.start}): kb ingest reads Markdown, plain text or "
                      f"JSONL") from None
    if not text.strip():
        raise KBError(f"{path} is empty: nothing to ingest")
    return text


def _metadata(meta: dict, source: str) -> dict:
    """Passage fields from a front-matter block or a JSONL row: subject, cards (a list or a comma-separated
    string; `card` for one), title; everything else stays as metadata."""
    meta = dict(meta)
    cards = meta.pop("cards", None) or meta.pop("card", None) or []
    if isinstance(cards, str):
        cards = [c.strip() for c in cards.split(",") if c.strip()]
    subject = meta.pop("subject", None)
    return {"source": source, "subject": None if subject is None else str(subject),
            "cards": tuple(str(c) for c in cards), "title": str(meta.pop("title", "") or ""), "metadata": meta}


def _pieces(text: str, fields: dict, title: str, max_chars: int, overlap: int) -> list[Passage]:
    return [Passage(text=piece, **{**fields, "title": title}) for piece in split_length(text, max_chars, overlap)]


def read_markdown(text: str, source: str, max_chars: int, overlap: int) -> list[Passage]:
    front = _FRONT_MATTER.match(text)
    meta = {}
    if front:
        try:
            meta = yaml.safe_load(front.group(1)) or {}
        except yaml.YAMLError:
            raise KBError(f"{source}: the front matter (between the --- lines) is not valid YAML") from None
        if not isinstance(meta, dict):
            raise KBError(f"{source}: the front matter must be `key: value` lines")
        text = text[front.end():]
    fields = _metadata(meta, source)
    heading_path: list[str] = [fields.pop("title")] if fields["title"] else []
    sections: list[tuple[str, list[str]]] = [(" > ".join(heading_path), [])]
    for line in text.splitlines():
        match = _HEADING.match(line)
        if match:
            level = len(match.group(1))
            heading_path = heading_path[:level - 1] + [match.group(2)]
            sections.append((" > ".join(heading_path), []))
        else:
            sections[-1][1].append(line)
    passages = []
    for title, lines in sections:
        body = "\n".join(lines).strip()
        if body:
            passages += _pieces(body, fields, title, max_chars, overlap)
    return passages


def read_plain(text: str, source: str, max_chars: int, overlap: int) -> list[Passage]:
    fields = _metadata({}, source)
    fields.pop("title")
    passages, block = [], ""
    for para in (p.strip() for p in re.split(r"\n\s*\n", text)):
        if not para:
            continue
        if block and len(block) + 2 + len(para) > max_chars:
            passages += _pieces(block, fields, "", max_chars, overlap)
            block = ""
        block = f"{block}\n\n{para}" if block else para
    if block:
        passages += _pieces(block, fields, "", max_chars, overlap)
    return passages


def read_jsonl(text: str, source: str, max_chars: int, overlap: int) -> list[Passage]:
    passages = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise KBError(f"{source}:{number}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
            raise KBError(f"{source}:{number}: each line must be an object with a non-empty `text`")
        fields = _metadata({k: v for k, v in row.items() if k != "text"}, source)
        passages += _pieces(row["text"], fields, fields.pop("title"), max_chars, overlap)
    return passages


def read_passages(path: Path, max_chars: int, overlap: int, source: str | None = None) -> list[Passage]:
    """The passages of one file, by its suffix: .md/.markdown Markdown, .jsonl JSONL, anything else plain text."""
    path = Path(path)
    source = source or str(path.resolve())
    text = _read_text(path)
    suffix = path.suffix.lower()
    reader = read_markdown if suffix in (".md", ".markdown") else read_jsonl if suffix == ".jsonl" else read_plain
    passages = reader(text, source, max_chars, overlap)
    if not passages:
        raise KBError(f"{path} has no text outside its headings and front matter: nothing to ingest")
    return passages
