"""One simulated teacher–student dialogue: the student opens, then the roles alternate."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from parallel_r1.data import (
    Dialogue,
    DialogueTask,
    PersonaSampler,
    StudentProfileConfig,
    Turn,
    get_card,
)
from parallel_r1.discover.backend import ChatBackend, DialogueContext


def context_for(task: DialogueTask) -> DialogueContext:
    """The card and a persona for a task; the persona is seeded by the task, so reruns agree."""
    persona = PersonaSampler(task.seed).sample(StudentProfileConfig.for_kind(task.profile_kind))
    return DialogueContext(task=task, card=get_card(task.card_id), persona=persona)


async def simulate_dialogue(backend: ChatBackend, task: DialogueTask) -> Dialogue:
    ctx = context_for(task)
    session = backend.open(ctx)
    started = time.perf_counter()
    turns: list[Turn] = []
    while len(turns) < task.target_turns:
        role = "student" if len(turns) % 2 == 0 else "teacher"
        turns.append(Turn(role, await session.reply(role, turns)))
    card = ctx.card
    return Dialogue(
        dialogue_id=task.dialogue_id, iteration=task.iteration, scenario_id=card.id, topic=card.topic,
        domain=card.domain, question_type=card.question_type, difficulty=card.difficulty,
        is_special=card.special is not None, profile_kind=ctx.persona.kind, persona=ctx.persona.to_dict(),
        turns=turns, backend=backend.name, model=backend.model, seed=task.seed,
        behaviours=list(session.behaviours), grounding=list(getattr(session, "grounding", [])),  # openai only
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        duration_s=time.perf_counter() - started,
    )
