"""The Weaviate store through the real weaviate-client, against `tests/fakes/weaviate_server.py`: a local fake of the
part of Weaviate's protocol the client uses, since no Weaviate server can be installed here. Ingest by digest,
idempotent re-ingest, metadata filters, cosine order, the model refusal, one-line errors, and no `weaviate` import
unless the store is chosen."""

from __future__ import annotations

import re
import subprocess
import sys
import zlib

import numpy as np
import pytest

from parallel_r1.config import ConfigError, KBConfig, load_config
from parallel_r1.kb import Filters, KBError, Passage, open_kb
from parallel_r1.kb.stage import run_ingest
from parallel_r1.kb.store import UpsertResult
from tests.fakes.weaviate_server import FakeWeaviate
from tests.kb.conftest import FakeEmbedder
from tests.kb.servers import free_port


class WordsEmbedder:
    """A deterministic bag-of-words embedding (64 dims): texts that share words are close; no model to load."""

    name = "test/words-64"
    dimension = 64

    def embed(self, texts, progress=None):
        rows = np.full((len(texts), self.dimension), 1e-3, dtype=np.float32)
        for row, text in zip(rows, texts, strict=True):
            for word in re.findall(r"[a-z]+", text.lower()):
                row[zlib.crc32(word.encode()) % self.dimension] += 1
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def server():
    with FakeWeaviate() as fake:
        yield fake


def weaviate_config(server: FakeWeaviate, table: str) -> KBConfig:
    return KBConfig(store="weaviate", weaviate_url=server.url, weaviate_grpc_port=server.grpc_port, table=table,
                    cache=False)


def unit(*values: float) -> np.ndarray:
    vec = np.zeros(WordsEmbedder.dimension, dtype=np.float32)
    vec[:len(values)] = values
    return vec


def test_ingest_is_idempotent_by_content(server, small_corpus, tmp_path):
    cfg = load_config(None, {"workdir": str(tmp_path), "kb.store": "weaviate", "kb.weaviate_url": server.url,
                             "kb.weaviate_grpc_port": server.grpc_port, "kb.table": "t_ingest", "kb.cache": False})
    first = run_ingest(cfg, small_corpus, embedder=WordsEmbedder(), progress=False)
    assert first.added == first.passages == first.embedded > 10
    stored = server.collections["T_ingest"].objects
    assert len(stored) == first.passages
    assert {props["model"] for props, _ in stored.values()} == {WordsEmbedder.name}
    assert {len(vectors["default"]) for _, vectors in stored.values()} == {WordsEmbedder.dimension}
    with open_kb(cfg.kb, tmp_path, WordsEmbedder()) as kb:
        generation = kb.store.generation()
    batches = server.calls["BatchObjects"]
    again = run_ingest(cfg, small_corpus, embedder=WordsEmbedder(), progress=False)
    assert (again.added, again.unchanged, again.embedded) == (0, first.passages, 0)
    assert server.calls["BatchObjects"] == batches  # nothing written at all
    with open_kb(cfg.kb, tmp_path, WordsEmbedder()) as kb:
        assert kb.store.count() == first.passages and kb.store.generation() == generation
        hits = kb.query("pointer swap function caller variables", k=3)
    assert hits[0].passage.source.endswith("pointers.md") and hits[0].passage.subject == "programming"


def test_refreshed_metadata_keeps_the_vector_and_changes_the_generation(server, tmp_path):
    note = Passage("Momentum is mass times velocity.", "physics.md", subject="physics")
    with open_kb(weaviate_config(server, "t_refresh"), tmp_path, WordsEmbedder()) as kb:
        assert kb.ingest([note]).added == 1
        generation, (uid,) = kb.store.generation(), server.collections["T_refresh"].objects
        vector = server.collections["T_refresh"].objects[uid][1]["default"].copy()
        assert kb.store.upsert([note], {note.digest: unit(1)}) == UpsertResult(added=0, unchanged=1)  # a late twin
        assert kb.store.generation() == generation
        retitled = Passage(note.text, note.source, title="Momentum", subject=note.subject)
        assert kb.ingest([retitled]).unchanged == 1 and kb.query("momentum", k=1)[0].passage == retitled
        assert kb.store.generation() != generation
        moved = Passage(note.text, "mechanics.md", title="Momentum", subject="mechanics", cards=("momentum",),
                        metadata={"level": 2})
        result = kb.ingest([moved])
        assert (result.added, result.unchanged, result.embedded) == (0, 1, 0)
        assert kb.store.generation() != generation
        (hit,) = kb.query("mass times velocity", k=5)
    assert hit.passage == moved
    np.testing.assert_array_equal(server.collections["T_refresh"].objects[uid][1]["default"], vector)


def test_search_ranks_by_cosine_similarity(server, tmp_path):
    vectors = {"east": unit(1, 0), "north-east": unit(1, 1), "north": unit(0, 1), "west": unit(-1, 0.1)}
    passages = [Passage(f"{name} wind", "winds.md") for name in vectors]
    with open_kb(weaviate_config(server, "t_rank"), tmp_path, WordsEmbedder()) as kb:
        kb.store.upsert(passages, {p.digest: vectors[p.text.split()[0]] for p in passages})
        query = unit(1, 0.2)
        hits = kb.store.search(query, k=3)
        everything = kb.store.search(query, k=10)
    assert [h.passage.text for h in hits] == ["east wind", "north-east wind", "north wind"]
    expected = {name: float(vec @ query / np.linalg.norm(vec) / np.linalg.norm(query)) for name, vec in vectors.items()}
    assert [h.score for h in everything] == pytest.approx([expected[h.passage.text.split()[0]] for h in everything])
    assert everything[-1].passage.text == "west wind" and everything[-1].score < 0


def test_metadata_filters(server, tmp_path):
    notes = [Passage("Pointers hold addresses.", "c/pointers.md", subject="programming", cards=("pointers-swap",)),
             Passage("Recursion needs a base case.", "c/recursion.md", subject="programming", cards=("recursion",)),
             Passage("Add fractions over a common denominator.", "maths/fractions.md", subject="maths",
                     cards=("fractions-add", "fractions-compare")),
             Passage("Compare fractions by cross-multiplying.", "maths/fractions.md", subject="maths")]
    with open_kb(weaviate_config(server, "t_filters"), tmp_path, WordsEmbedder()) as kb:
        kb.ingest(notes)

        def texts(**filters) -> set[str]:
            return {h.passage.text for h in kb.query("fractions pointers recursion", k=10, filters=Filters(**filters))}

        assert texts(subject="maths") == {notes[2].text, notes[3].text}
        assert texts(card="fractions-compare") == {notes[2].text}
        assert texts(source="c/recursion.md") == {notes[1].text}
        assert texts(subject="maths", source="maths/fractions.md", card="fractions-add") == {notes[2].text}
        assert texts(subject="maths", card="pointers-swap") == set()
        assert texts(subject="math") == set()  # exact values, not words or prefixes
        assert len(texts()) == 4


def test_another_embedding_model_or_a_foreign_collection_is_refused(server, tmp_path):
    cfg = weaviate_config(server, "t_model")
    with open_kb(cfg, tmp_path, WordsEmbedder()) as kb:
        kb.ingest([Passage("Inertia resists changes of motion.", "x")])
        with pytest.raises(KBError, match="does not fit"):
            kb.store.upsert([Passage("Work is force times distance.", "x")], {
                Passage("Work is force times distance.", "x").digest: np.ones(5, dtype=np.float32)})
        assert kb.store.count() == 1
    with pytest.raises(KBError, match=rf"collection T_model in Weaviate from kb.weaviate_url \({server.url}\) holds "
                                      r"vectors of test/words-64 \(64 dims\), not of fake/hash-8 \(8 dims\)") as err:
        with open_kb(cfg, tmp_path, FakeEmbedder()):
            pass
    assert "\n" not in str(err.value)
    server.create_class({"class": "Foreign", "vectorConfig": {}})
    with pytest.raises(KBError, match="collection Foreign .* was not made by parallel-r1"):
        with open_kb(weaviate_config(server, "foreign"), tmp_path, WordsEmbedder()):
            pass


def test_unreachable_weaviate_is_a_one_line_error_naming_it(server, monkeypatch, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.delenv("WEAVIATE_URL", raising=False)
    with pytest.raises(KBError, match=rf"cannot reach Weaviate from kb.weaviate_url \({url}\): .*refused") as err:
        with open_kb(KBConfig(store="weaviate", weaviate_url=url, cache=False), tmp_path, WordsEmbedder()):
            pass
    assert "\n" not in str(err.value)
    monkeypatch.setenv("WEAVIATE_URL", url)
    with pytest.raises(KBError, match=rf"cannot reach Weaviate from WEAVIATE_URL \({url}\)"):
        with open_kb(KBConfig(store="weaviate", cache=False), tmp_path, WordsEmbedder()):
            pass
    wrong_grpc = KBConfig(store="weaviate", weaviate_url=server.url, weaviate_grpc_port=free_port(),
                          connect_timeout_s=1, cache=False)
    with pytest.raises(KBError, match=r"cannot reach the gRPC port \d+ of Weaviate .* within 1 s"):
        with open_kb(wrong_grpc, tmp_path, WordsEmbedder()):
            pass
    monkeypatch.delenv("WEAVIATE_URL")
    with pytest.raises(KBError, match="set kb.weaviate_url .* or WEAVIATE_URL"):
        with open_kb(KBConfig(store="weaviate", cache=False), tmp_path, WordsEmbedder()):
            pass


def test_the_store_is_chosen_by_config():
    with pytest.raises(ConfigError, match="kb.store: Input should be 'postgres' or 'weaviate'"):
        load_config(None, {"kb.store": "milvus"})
    code = ("import sys, parallel_r1.kb, parallel_r1.kb.stage, parallel_r1.kb.grounding; "
            "assert 'weaviate' not in sys.modules, 'weaviate imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
