"""Files into passages without any server: chunking by headings and length with overlap, metadata, the bad inputs
that must be one-line errors, the built-in corpus, the `kb` config and where the endpoints resolve to."""

from __future__ import annotations

import json

import pytest

from parallel_r1.config import ConfigError, KBConfig, load_config
from parallel_r1.data.scenarios import ALL_CARDS
from parallel_r1.kb.chunking import builtin_corpus, read_passages, split_length
from parallel_r1.kb.endpoints import postgres_endpoint, redact, redis_endpoint
from parallel_r1.kb.store import KBError, Passage


def test_split_length_keeps_the_limit_and_overlaps():
    text = " ".join(f"word{i}" for i in range(300))
    pieces = split_length(text, 100, 30)
    assert len(pieces) > 1 and all(len(p) <= 100 for p in pieces)
    for before, after in zip(pieces, pieces[1:], strict=False):
        shared = max(n for n in range(len(after)) if before.endswith(after[:n]))
        assert 10 <= shared <= 30  # the next piece starts with the previous one's last words
    assert " ".join(pieces[0].split()[:3]) == "word0 word1 word2" and pieces[-1].endswith("word299")
    assert split_length("short text", 100, 30) == ["short text"]


def test_markdown_is_cut_at_headings_with_front_matter_metadata(tmp_path):
    path = tmp_path / "note.md"
    path.write_text("---\nsubject: maths\ncards: a-card, b-card\nlevel: 2\n---\n# Topic\nIntro line.\n\n"
                    "## Part one\nFirst body.\n\n## Part two\n" + "long " * 200 + "\n")
    passages = read_passages(path, 300, 50)
    assert [p.title for p in passages[:2]] == ["Topic", "Topic > Part one"]
    assert all(p.title == "Topic > Part two" for p in passages[2:]) and len(passages) > 3
    assert {(p.subject, p.cards, p.source) for p in passages} == {("maths", ("a-card", "b-card"),
                                                                   str(path.resolve()))}
    assert passages[0].metadata == {"level": 2} and passages[1].text == "First body."


def test_jsonl_rows_carry_their_metadata(tmp_path):
    path = tmp_path / "notes.jsonl"
    rows = [{"text": "Pointers hold addresses.", "subject": "programming", "card": "pointers-swap", "url": "x"},
            {"text": "Sixths are a common denominator.", "title": "Fractions", "cards": ["fractions-add"]}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    first, second = read_passages(path, 500, 50, source="notes")
    assert first == Passage("Pointers hold addresses.", "notes", "", "programming", ("pointers-swap",), {"url": "x"})
    assert second.title == "Fractions" and second.cards == ("fractions-add",) and second.subject is None


def test_plain_text_packs_paragraphs(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("One.\n\nTwo.\n\n" + "Three is longer. " * 10)
    passages = read_passages(path, 120, 20)
    assert passages[0].text == "One.\n\nTwo." and len(passages) >= 2
    assert all(len(p.text) <= 120 for p in passages)


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("empty.md", b"", "is empty"),
    ("blank.txt", b"  \n\n ", "is empty"),
    ("image.md", b"\x89PNG\r\n\x1a\n\x00\x00rest", "is binary"),
    ("latin.txt", "caf\u00e9".encode("latin-1"), "not UTF-8"),
    ("bad.jsonl", b'{"text": "fine"}\n{"text": \n', "bad.jsonl:2: not valid JSON"),
    ("notext.jsonl", b'{"title": "no text"}\n', "non-empty `text`"),
    ("headings.md", b"---\nsubject: maths\n---\n# Only a heading\n", "no text outside its headings"),
])
def test_bad_files_are_one_line_errors(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(KBError, match=expected) as err:
        read_passages(path, 500, 50)
    assert "\n" not in str(err.value)


def test_builtin_corpus_serves_every_scenario_card():
    passages = [p for path in builtin_corpus() for p in read_passages(path, 700, 120, f"builtin/{path.name}")]
    covered = {card for p in passages for card in p.cards}
    assert {c.id for c in ALL_CARDS} <= covered
    assert len(builtin_corpus()) >= 12 and all(len(p.text) <= 700 for p in passages)


def test_kb_config_grounds_nothing_by_default_and_checks_its_fields():
    cfg = load_config(None)
    assert cfg.kb.ground == [] and cfg.kb.postgres_dsn is None and cfg.kb.redis_url is None
    with pytest.raises(ConfigError, match="kb.ground.1: Input should be 'parallel_sft', 'discover' or 'serve'"):
        load_config(None, ["kb.ground=[serve,search]"])
    with pytest.raises(ConfigError, match="chunk_overlap"):
        load_config(None, ["kb.chunk_overlap=800"])
    with pytest.raises(ConfigError, match="kb.table"):
        load_config(None, ["kb.table=drop table x"])


def test_endpoints_resolve_from_config_then_environment_then_embedded(tmp_path):
    dsn = "postgresql://kb:secret@db.internal:5432/kb"
    assert postgres_endpoint(KBConfig(postgres_dsn=dsn), tmp_path, env={"PGHOST": "x"}).url == dsn
    from_env = postgres_endpoint(KBConfig(), tmp_path, env={"PGHOST": "db", "PGPORT": "5433"})
    assert from_env.url == "" and "PGHOST" in from_env.origin
    embedded = postgres_endpoint(KBConfig(), tmp_path, env={"PGPORT": "5433"})
    assert embedded.url is None and embedded.data_path == tmp_path.resolve() / "kb" / "pg"
    assert redis_endpoint(KBConfig(cache=False), tmp_path) is None
    assert redis_endpoint(KBConfig(), tmp_path).data_path == tmp_path.resolve() / "kb" / "cache.rdb"
    assert redis_endpoint(KBConfig(redis_url="redis://r:6379/1"), tmp_path).url == "redis://r:6379/1"
    assert redact(dsn) == "postgresql://kb@db.internal:5432/kb"
    assert redact("host=db password=secret") == "host=db password=***"
