"""Dialogue and turn records, their explicit Arrow schema, and Parquet IO with atomic writes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from parallel_r1.data.io import atomic_write_table
from parallel_r1.data.records import unreadable

LENGTH_BUCKETS = ("short", "medium", "long")
ROLES = ("student", "teacher")


def length_bucket(n_turns: int) -> str:
    """short: 2–4 turns, medium: 5–8, long: 9+ (a turn is one message)."""
    if n_turns <= 4:
        return "short"
    return "medium" if n_turns <= 8 else "long"


@dataclass
class Turn:
    role: str  # "student" | "teacher"
    content: str


@dataclass
class Dialogue:
    dialogue_id: str
    iteration: int
    scenario_id: str
    topic: str
    domain: str
    question_type: str
    difficulty: str
    is_special: bool
    profile_kind: str
    persona: dict
    turns: list[Turn]
    backend: str
    model: str
    seed: int
    behaviours: list[str] = field(default_factory=list)  # teacher behaviours the simulator intended
    created_at: str = ""
    duration_s: float = 0.0
    score: float | None = None
    confidence: float | None = None
    criteria: dict[str, float] = field(default_factory=dict)
    grader: str | None = None
    stock_phrase_density: float | None = None
    source: str | None = None  # the transcripts file an imported dialogue came from; None: discovered
    profile_source: str | None = None  # imported: "given" or "inferred:<reader>"; None: the simulator's
    # knowledge-base passages the tutor's prompt got (kb.ground: [discover]): {"turn", "digest", "source", "title",
    # "score"} per passage and tutor turn
    grounding: list[dict] = field(default_factory=list)

    @property
    def n_turns(self) -> int:
        return len(self.turns)

    @property
    def length_bucket(self) -> str:
        return length_bucket(self.n_turns)

    @property
    def traits(self) -> list[str]:
        return list(self.persona.get("traits") or [])

    def messages(self, system: str | None = None) -> list[dict]:
        """The dialogue in the chat `messages` format: the teacher is the assistant."""
        msgs = [{"role": "system", "content": system}] if system else []
        role = {"student": "user", "teacher": "assistant"}
        return msgs + [{"role": role[t.role], "content": t.content} for t in self.turns]

    def to_row(self) -> dict:
        row = asdict(self)
        row["n_turns"] = self.n_turns
        row["length_bucket"] = self.length_bucket
        row["criteria"] = list(self.criteria.items())
        return row

    @classmethod
    def from_row(cls, row: dict) -> Dialogue:
        row = dict(row)
        row.pop("n_turns", None)
        row.pop("length_bucket", None)
        row["turns"] = [Turn(**t) for t in row["turns"]]
        row["criteria"] = dict(row.get("criteria") or [])
        row["persona"] = {**row["persona"], "traits": list(row["persona"].get("traits") or [])}
        row["grounding"] = list(row.get("grounding") or [])  # files written before the column read as null
        return cls(**row)


PERSONA_TYPE = pa.struct([
    ("name", pa.string()), ("age", pa.int32()), ("level", pa.string()), ("background", pa.string()),
    ("voice", pa.string()), ("struggles", pa.string()), ("kind", pa.string()),
    ("traits", pa.list_(pa.string())),
])
TURN_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])
GROUNDING_TYPE = pa.struct([("turn", pa.int32()), ("digest", pa.string()), ("source", pa.string()),
                            ("title", pa.string()), ("score", pa.float64())])

DIALOGUE_SCHEMA = pa.schema([
    pa.field("dialogue_id", pa.string(), nullable=False),
    pa.field("iteration", pa.int64(), nullable=False),
    ("scenario_id", pa.string()), ("topic", pa.string()), ("domain", pa.string()),
    ("question_type", pa.string()), ("difficulty", pa.string()), ("is_special", pa.bool_()),
    ("profile_kind", pa.string()), ("persona", PERSONA_TYPE),
    ("turns", pa.list_(TURN_TYPE)), ("n_turns", pa.int32()), ("length_bucket", pa.string()),
    ("backend", pa.string()), ("model", pa.string()), ("seed", pa.int64()),
    ("behaviours", pa.list_(pa.string())), ("created_at", pa.string()), ("duration_s", pa.float64()),
    ("score", pa.float64()), ("confidence", pa.float64()),
    ("criteria", pa.map_(pa.string(), pa.float64())), ("grader", pa.string()),
    ("stock_phrase_density", pa.float64()), ("source", pa.string()), ("profile_source", pa.string()),
    ("grounding", pa.list_(GROUNDING_TYPE)),
])


def dialogues_to_table(dialogues: list[Dialogue]) -> pa.Table:
    return pa.Table.from_pylist([d.to_row() for d in dialogues], schema=DIALOGUE_SCHEMA)


def table_to_dialogues(table: pa.Table) -> list[Dialogue]:
    return [Dialogue.from_row(r) for r in table.to_pylist()]


DIALOGUES_REMEDY = "re-run `parallel-r1 discover` (or `import`), then `grade`, to write it again"


def read_dialogues(path: Path, remedy: str = DIALOGUES_REMEDY) -> list[Dialogue]:
    """The dialogues of a Parquet artifact; a truncated or corrupt file is a one-line error naming it and `remedy`
    (what writes it again)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `parallel-r1 discover` first")
    try:
        return table_to_dialogues(pq.read_table(path, schema=DIALOGUE_SCHEMA))
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as e:
        lines = str(e).strip().splitlines() or [type(e).__name__]
        raise unreadable(path, lines[0], remedy) from None


def write_dialogues(path: Path, dialogues: list[Dialogue]) -> Path:
    return atomic_write_table(path, dialogues_to_table(dialogues))
