"""`parallel-r1 kb ingest` and `kb query`: files (or the built-in teaching notes) into the knowledge base, and the
passages closest to a text out of it, with a progress bar and a summary table."""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

from parallel_r1.config import PipelineConfig
from parallel_r1.console import notice, progress_bar, summary_table
from parallel_r1.data.io import append_line
from parallel_r1.kb.chunking import builtin_corpus, expand, read_passages
from parallel_r1.kb.embedder import Embedder
from parallel_r1.kb.endpoints import kb_dir
from parallel_r1.kb.service import IngestResult, open_kb
from parallel_r1.kb.store import Filters, Hit, KBError, Passage

log = logging.getLogger(__name__)


def collect(cfg: PipelineConfig, paths: list[Path], builtin: bool = False) -> tuple[list[Passage], Counter]:
    """Every passage of the given files (and of the built-in corpus), and the count per file; any bad file is a
    KBError before anything is stored."""
    files = [(p, f"builtin/{p.name}") for p in builtin_corpus()] if builtin else []
    files += [(p, None) for p in expand(paths)]
    if not files:
        raise KBError("nothing to ingest: give files or folders, or --builtin for the built-in teaching notes")
    passages, per_file = [], Counter()
    for path, source in files:
        found = read_passages(path, cfg.kb.chunk_chars, cfg.kb.chunk_overlap, source)
        per_file[source or str(path)] = len(found)
        passages += found
    return passages, per_file


def run_ingest(cfg: PipelineConfig, paths: list[Path], *, builtin: bool = False, embedder: Embedder | None = None,
               progress: bool = True) -> IngestResult:
    passages, per_file = collect(cfg, paths, builtin)
    start = time.perf_counter()
    with open_kb(cfg.kb, cfg.workdir, embedder) as kb:
        notice(f"kb ingest: {len(per_file)} file(s), {len(passages)} passage(s) into {kb.store.table} "
               f"({kb.embedder.name})")
        if progress:
            with progress_bar() as bar:
                task = bar.add_task("embed", total=len(passages), status="new passages")
                result = kb.ingest(passages, lambda n: bar.advance(task, n))
                bar.update(task, total=result.embedded, completed=result.embedded)
        else:
            result = kb.ingest(passages)
        total = kb.store.count()
    seconds = time.perf_counter() - start
    append_line(kb_dir(cfg.workdir) / "ingest.jsonl", {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": sorted(per_file), "passages": result.passages,
        "added": result.added, "unchanged": result.unchanged, "table": cfg.kb.table, "model": kb.embedder.name})
    rows = [(name, count) for name, count in sorted(per_file.items())]
    notice(summary_table("kb ingest", ["file", "passages"], rows))
    notice(summary_table("knowledge base", ["", "value"], [
        ("passages in the input (distinct)", result.passages), ("added", result.added),
        ("already stored", result.unchanged), ("embedded", result.embedded), ("passages in the store", total),
        ("seconds", round(seconds, 1))]))
    return result


def run_query(cfg: PipelineConfig, text: str, k: int = 5, filters: Filters | None = None,
              embedder: Embedder | None = None) -> list[Hit]:
    if not text.strip():
        raise KBError("kb query needs a non-empty text")
    with open_kb(cfg.kb, cfg.workdir, embedder) as kb:
        if kb.store.count() == 0:
            raise KBError(f"the knowledge base ({kb.store.table}) is empty: run `parallel-r1 kb ingest --builtin` "
                          f"or `parallel-r1 kb ingest PATH...` first")
        hits = kb.query(text, k, filters)
    rows = [(Path(h.passage.source).name, round(h.score, 3), h.passage.title or "-", _snippet(h.passage.text))
            for h in hits]
    notice(summary_table(f"kb query: {text[:60]}", ["source", "score", "section", "passage"], rows))
    return hits


def _snippet(text: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"
