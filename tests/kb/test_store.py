"""The pgvector store on the real embedded PostgreSQL: idempotent ingest, retrieval, metadata filters, the
refusals (another model, an unreachable store, a bad file) with nothing half-written, and the `kb` commands."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.config import KBConfig, load_config
from parallel_r1.data.io import pid_running
from parallel_r1.kb import Filters, KBError, Passage, open_kb
from parallel_r1.kb.endpoints import postgres_endpoint, running_postgres
from parallel_r1.kb.stage import run_ingest
from tests.kb.conftest import FakeEmbedder
from tests.kb.servers import free_port

pytestmark = pytest.mark.kb

TABLE = "t_store"


@pytest.fixture(scope="module")
def ingested(kb_workdir, small_corpus, embedder):
    cfg = load_config(None, {"workdir": str(kb_workdir), "kb.table": TABLE})
    first = run_ingest(cfg, small_corpus, embedder=embedder, progress=False)
    return cfg, first


def test_ingest_is_idempotent_by_content(ingested, small_corpus, embedder):
    cfg, first = ingested
    assert first.added == first.passages == first.embedded > 10
    with open_kb(cfg.kb, cfg.workdir, embedder) as kb:
        generation = kb.store.generation()
    again = run_ingest(cfg, small_corpus, embedder=embedder, progress=False)
    assert (again.added, again.unchanged, again.embedded) == (0, first.passages, 0)
    with open_kb(cfg.kb, cfg.workdir, embedder) as kb:
        assert kb.store.count() == first.passages and kb.store.generation() == generation


@pytest.mark.parametrize(("question", "source"), [
    ("my C swap function does not change the caller's variables", "pointers.md"),
    ("why is 1/2 + 1/3 not 2/5?", "fractions.md"),
    ("a 99% accurate test came back positive, am I sick?", "conditional-probability.md"),
    ("if a branch is just a pointer where is my work stored", "git-branches.md"),
])
def test_query_finds_the_passage_that_answers(ingested, embedder, question, source):
    cfg, _ = ingested
    with open_kb(cfg.kb, cfg.workdir, embedder) as kb:
        hits = kb.query(question, k=3)
    assert Path(hits[0].passage.source).name == source
    assert hits[0].score > 0.4 and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_metadata_filters(ingested, embedder, small_corpus):
    cfg, _ = ingested
    question = "how do I add two fractions"
    recursion = str(next(p for p in small_corpus if p.name == "recursion.md").resolve())
    with open_kb(cfg.kb, cfg.workdir, embedder) as kb:
        programming = kb.query(question, k=5, filters=Filters(subject="programming"))
        card = kb.query(question, k=5, filters=Filters(card="pointers-swap"))
        source = kb.query(question, k=5, filters=Filters(source=recursion))
        nothing = kb.query(question, k=5, filters=Filters(subject="maths", card="pointers-swap"))
    assert programming and {h.passage.subject for h in programming} == {"programming"}
    assert card and {Path(h.passage.source).name for h in card} == {"pointers.md"}
    assert source and {h.passage.source for h in source} == {recursion}
    assert nothing == []


def test_another_embedding_model_is_refused(ingested):
    cfg, _ = ingested
    with pytest.raises(KBError, match=f"table {TABLE} .* holds vectors of sentence-transformers/all-MiniLM-L6-v2 "
                                      r"\(384 dims\), not of fake/hash-8 \(8 dims\)") as err:
        with open_kb(cfg.kb, cfg.workdir, FakeEmbedder()):
            pass
    assert "\n" not in str(err.value)


def test_unreachable_store_is_a_one_line_error(tmp_path, embedder):
    cfg = KBConfig(postgres_dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", cache=False)
    with pytest.raises(KBError, match=r"cannot reach PostgreSQL from kb.postgres_dsn \(postgresql://postgres@127") \
            as err:
        with open_kb(cfg, tmp_path, embedder):
            pass
    assert "\n" not in str(err.value)


def test_a_bad_file_or_vector_writes_nothing(ingested, embedder, tmp_path):
    cfg, first = ingested
    good = tmp_path / "good.md"
    good.write_text("# Momentum\nMomentum is mass times velocity.\n")
    for bad_name, content in (("empty.txt", b""), ("blob.md", b"\x00\x01\x02binary")):
        bad = tmp_path / bad_name
        bad.write_bytes(content)
        with pytest.raises(KBError, match=bad_name):
            run_ingest(cfg, [good, bad], embedder=embedder, progress=False)
    with open_kb(cfg.kb, cfg.workdir, embedder) as kb:
        new = [Passage("Inertia resists changes of motion.", "x"), Passage("Work is force times distance.", "x")]
        vectors = {new[0].digest: np.ones(384, dtype=np.float32) / np.sqrt(384),
                   new[1].digest: np.ones(5, dtype=np.float32)}
        with pytest.raises(KBError, match="does not fit"):
            kb.store.upsert(new, vectors)
        assert kb.store.count() == first.passages and kb.store.missing([p.digest for p in new]) == {
            p.digest for p in new}


def test_kb_commands(kb_workdir, small_corpus, tmp_path):
    runner = CliRunner()
    common = ["--workdir", str(kb_workdir), "--set", "kb.table=t_cli"]
    pointers = next(p for p in small_corpus if p.name == "pointers.md")
    result = runner.invoke(app, ["kb", "ingest", str(pointers), *common])
    assert result.exit_code == 0, result.output
    assert "added" in result.output and (kb_workdir / "kb" / "ingest.jsonl").is_file()
    result = runner.invoke(app, ["kb", "query", "what does *p = 7 do to x", "-k", "2", *common])
    assert result.exit_code == 0, result.output
    assert "pointers.md" in result.output
    empty = tmp_path / "empty.md"
    empty.write_text("")
    result = runner.invoke(app, ["kb", "ingest", str(empty), *common])
    assert result.exit_code == 2 and "is empty" in result.output and "Traceback" not in result.output


def test_the_embedded_server_stops_when_a_user_of_it_was_killed(kb_root):
    """A process killed while using the embedded PostgreSQL (a router replica, a discovery actor) must not keep it
    running after the last live user lets go."""
    endpoint = postgres_endpoint(KBConfig(), kb_root / "killed", env={})
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom parallel_r1.config import KBConfig\n"
         "from parallel_r1.kb.endpoints import postgres_endpoint, running_postgres\n"
         f"with running_postgres(postgres_endpoint(KBConfig(), {str(kb_root / 'killed')!r}, env={{}})):\n"
         "    print('up', flush=True)\n    time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "up"
    finally:
        holder.kill()
        holder.wait()
    postmaster = int((endpoint.data_path / "postmaster.pid").read_text().split()[0])
    assert pid_running(postmaster)  # left running by the killed process
    with running_postgres(endpoint) as dsn:
        with psycopg.connect(dsn) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    deadline = time.monotonic() + 30
    while pid_running(postmaster) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pid_running(postmaster)
    assert json.loads((endpoint.data_path / ".handle_pids.json").read_text()) == []
