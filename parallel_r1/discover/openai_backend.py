"""The chat backend for any OpenAI-compatible endpoint: one model role-plays both the student and the tutor.

Each role gets its own system prompt and sees the conversation from its own side (its turns as
`assistant`, the other's as `user`). The student's first turn is the card's opening line, verbatim. Each
request is trimmed to the served model's context, and a turn that breaks the role-play rules
(`turn_checks`) is asked for again with a corrective note, a bounded number of times.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from parallel_r1.config import OpenAIEndpointConfig, RolePlayConfig
from parallel_r1.data import ScenarioCard, StudentPersona, Turn
from parallel_r1.discover.backend import DialogueContext
from parallel_r1.discover.chat_window import ContextWindow, fit_messages
from parallel_r1.discover.turn_checks import TurnRejected, check_turn, strip_own_label
from parallel_r1.kb.grounding import passage_ref, reference_block
from parallel_r1.llm_client import Completion, EndpointError, OpenAIChatClient

if TYPE_CHECKING:
    from parallel_r1.kb.store import Hit

TRAIT_NOTES = {
    "neurodivergent": "You are neurodivergent: you process information your own way and do best with "
                      "explicit structure.",
    "bad_prior_teacher": "A previous teacher made you feel stupid for asking; you are wary, expect to be "
                         "judged, and need to see that this tutor is patient.",
    "rejects_metaphor": "Analogies and metaphors confuse you. If the tutor uses one, push back and ask for "
                        "the literal mechanism.",
    "executive_function_gap": "You understand ideas but cannot organise multi-step work: you lose track in "
                              "long explanations and ask what to do first.",
    "hyperfocus_trait": "When something interests you, you want to dig deeper into it and resist moving on "
                        "to anything else.",
}

# Opens the student's side so that it starts with a user turn: chat templates with strict
# user/assistant alternation (several served by vLLM) reject a conversation whose first turn is the
# assistant's.
STUDENT_KICKOFF = "(The tutoring chat has started. You sent the first message.)"


def student_prompt(persona: StudentPersona, card: ScenarioCard) -> str:
    """The student's role-play instructions: who they are, what they asked, what they believe."""
    traits = "".join(f"\n- {TRAIT_NOTES[t]}" for t in persona.traits if t in TRAIT_NOTES)
    return (
        "You are role-playing a student in a one-to-one online tutoring chat. Stay in character for the "
        "whole conversation.\n\n"
        f"Who you are: {persona.name}, {persona.age}, a {persona.level} who {persona.background}.\n"
        f"How you write: {persona.voice}.\n"
        f"What you struggle with: {persona.struggles}."
        f"{traits}\n\n"
        f"The topic is {card.topic}. You opened the chat with: \"{card.opening}\"\n"
        f"What you currently believe: {card.misconception}. Hold on to this until the tutor's "
        "explanation actually convinces you; do not suddenly understand everything.\n\n"
        "Rules:\n"
        "- You are the student, never the tutor: do not explain the topic, give lessons or answer your "
        "own question.\n"
        "- Write short chat messages (one to three sentences) in your own voice.\n"
        "- React to what the tutor just said: answer their questions, try the step they ask for, say "
        "when you are lost.\n"
        "- Write only your own message: no name labels, no stage directions, never the tutor's lines, "
        "and never say you are an AI or role-playing."
    )


def teacher_prompt(card: ScenarioCard) -> str:
    """The tutor's instructions: the subject and the session goal, nothing about the student.

    The tutor is not told the persona (name, background, struggles, traits): the specialists trained
    on these transcripts see only the conversation, so every adaptation in a training dialogue must
    follow from what the student says in it, not from hidden notes, and the grader then measures how
    well a tutor notices the student rather than how well it reads a profile. Nor is it told the card's
    model answer or teaching hints: discovery samples the model's own teaching, and grading picks the
    good dialogues.
    """
    return (
        f"You are a tutor in a one-to-one online chat, helping a student with {card.topic} "
        f"({card.domain}). Goal of the session: the student should be able to {card.goal}.\n"
        "Reply as the tutor only, in chat-length messages, and respond to what the student actually "
        "writes. Write only your own message: no name labels and never the student's lines."
    )


# Messages of a role's request that always stay when it is trimmed: the system prompt and the opening (for
# the student also the kickoff line before it).
HEAD = {"student": 3, "teacher": 2}
CONTEXT_ATTEMPTS = 3  # requests per turn when the server refuses the prompt as too long


class OpenAISession:
    """One dialogue: both roles' system prompts, each role's view of the turns so far, and the role-play
    checks. `behaviours` records what it took: one `roleplay_retry:<role>:<code>` per turn asked for again,
    and `context_trimmed:<n>` when n requests left older turns out to fit the model's context; `grounding` the
    knowledge-base passages each tutor turn's prompt got."""

    def __init__(self, backend: OpenAIBackend, ctx: DialogueContext):
        self._backend = backend
        self._opening = ctx.card.opening
        self._name = ctx.persona.name
        self._topic = ctx.card.topic
        self.system = {"student": student_prompt(ctx.persona, ctx.card), "teacher": teacher_prompt(ctx.card)}
        self.retries: list[str] = []
        self.trimmed = 0
        self.grounding: list[dict] = []

    @property
    def behaviours(self) -> list[str]:
        return [*self.retries, *([f"context_trimmed:{self.trimmed}"] if self.trimmed else [])]

    def messages(self, role: str, history: list[Turn], note: str = "") -> list[dict]:
        """The chat request for `role`'s next turn: its system prompt (with `note` after it), then the turns
        from its side."""
        msgs = [{"role": "system", "content": self.system[role] + (f"\n\n{note}" if note else "")}]
        if role == "student":
            msgs.append({"role": "user", "content": STUDENT_KICKOFF})
        msgs += [{"role": "assistant" if t.role == role else "user", "content": t.content} for t in history]
        return msgs

    async def _complete(self, role: str, history: list[Turn], note: str) -> Completion:
        """One reply, the request trimmed to the context; a context-length refusal is learnt from and retried."""
        backend = self._backend
        window = backend.window
        await window.ready()
        request = self.messages(role, history, note)
        for attempt in range(CONTEXT_ATTEMPTS):
            max_tokens = window.reply_tokens(backend.cfg.max_tokens)
            sent, dropped = fit_messages(request, HEAD[role], window.prompt_budget(max_tokens), window.estimate)
            try:
                done = await backend.client.complete_full(sent, max_tokens=max_tokens)
            except EndpointError as e:
                if not e.context_length or attempt == CONTEXT_ATTEMPTS - 1:
                    raise
                window.learn(e, sent)
                continue
            window.calibrate(sent, done.prompt_tokens)
            if dropped:
                self.trimmed += 1
            return done
        raise AssertionError("unreachable")

    async def _reference(self, history: list[Turn]) -> str:
        """The tutor's reference notes for its next turn: the passages retrieved (in a thread) for the topic and the
        student's last message, recorded in `grounding`; "" when ungrounded or when none is high-confidence."""
        retrieve = self._backend.retrieve
        if retrieve is None:
            return ""
        last = next((t.content for t in reversed(history) if t.role == "student"), "")
        hits = await asyncio.to_thread(retrieve, f"{self._topic}\n{last}")
        self.grounding += [{"turn": len(history), **passage_ref(h)} for h in hits]
        return reference_block([h.passage.text for h in hits]) if hits else ""

    async def reply(self, role: str, history: list[Turn]) -> str:
        if role not in self.system:
            raise ValueError(f"unknown role {role!r}; expected 'student' or 'teacher'")
        if role == "student" and not history:
            return self._opening
        rules = self._backend.roleplay
        reference = await self._reference(history) if role == "teacher" else ""
        note = ""
        for attempt in range(rules.max_retries + 1):
            done = await self._complete(role, history, "\n\n".join(part for part in (reference, note) if part))
            text = strip_own_label(role, done.text, self._name)
            problem = check_turn(role, text, finish_reason=done.finish_reason, history=history, name=self._name,
                                 rules=rules)
            if problem is None:
                return text
            if attempt < rules.max_retries:
                self.retries.append(f"roleplay_retry:{role}:{problem.code}")
                note = problem.note()
        raise TurnRejected(role, len(history), problem, rules.max_retries, text)


class OpenAIBackend:
    """Writes dialogues with a model behind an OpenAI-compatible endpoint; one client and one context window
    for all sessions. `retrieve` (kb.ground: [discover]): a query's high-confidence passages, for the tutor's prompt."""

    name = "openai"

    def __init__(self, cfg: OpenAIEndpointConfig, seed: int = 0, roleplay: RolePlayConfig | None = None,
                 retrieve: Callable[[str], list[Hit]] | None = None):
        self.cfg = cfg
        self.retrieve = retrieve
        self.model = cfg.model
        self.roleplay = roleplay or RolePlayConfig()
        self.client = OpenAIChatClient(cfg, seed=seed)
        self.window = ContextWindow(self.client, cfg.context_tokens)

    def open(self, ctx: DialogueContext) -> OpenAISession:
        return OpenAISession(self, ctx)

    async def close(self) -> None:
        await self.client.close()
