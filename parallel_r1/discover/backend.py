"""The chat backend interface: a backend opens one session per dialogue; a session writes turns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from parallel_r1.data import DialogueTask, ScenarioCard, StudentPersona, Turn


@dataclass(frozen=True)
class DialogueContext:
    """Everything a backend may use to write one dialogue."""

    task: DialogueTask
    card: ScenarioCard
    persona: StudentPersona


class DialogueSession(Protocol):
    behaviours: list[str]  # teacher behaviours the session intends (empty for real models)

    async def reply(self, role: str, history: list[Turn]) -> str:
        """The next message by `role` ("student" or "teacher") given the turns so far."""
        ...


class ChatBackend(Protocol):
    name: str
    model: str

    def open(self, ctx: DialogueContext) -> DialogueSession: ...

    async def close(self) -> None: ...
