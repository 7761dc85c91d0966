"""The chat backend for any OpenAI-compatible endpoint: one model role-plays both the student and the tutor.

Each role gets its own system prompt and sees the conversation from its own side (its turns as
`assistant`, the other's as `user`). The student's first turn is the card's opening line, verbatim.
"""

from __future__ import annotations

import re

from parallel_r1.config import OpenAIEndpointConfig
from parallel_r1.data import ScenarioCard, StudentPersona, Turn
from parallel_r1.discover.backend import DialogueContext
from parallel_r1.llm_client import OpenAIChatClient

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


_LABEL = re.compile(r"^\s*\**(\w+)\**\s*:\s*\**\s*")


class OpenAISession:
    """One dialogue: both roles' system prompts, and each role's view of the turns so far."""

    behaviours: list[str]

    def __init__(self, client: OpenAIChatClient, ctx: DialogueContext):
        self._client = client
        self._opening = ctx.card.opening
        self._labels = {"student", "teacher", "tutor", "assistant", "user", ctx.persona.name.lower()}
        self.system = {"student": student_prompt(ctx.persona, ctx.card), "teacher": teacher_prompt(ctx.card)}
        self.behaviours = []  # a real model's intentions are unknown; the grader judges the turns

    def messages(self, role: str, history: list[Turn]) -> list[dict]:
        """The chat request for `role`'s next turn: its system prompt, then the turns from its side."""
        msgs = [{"role": "system", "content": self.system[role]}]
        if role == "student":
            msgs.append({"role": "user", "content": STUDENT_KICKOFF})
        msgs += [{"role": "assistant" if t.role == role else "user", "content": t.content} for t in history]
        return msgs

    def _clean(self, text: str) -> str:
        """Drop a leading speaker label ("Tutor:", "Amara:") that role-playing models like to add."""
        m = _LABEL.match(text)
        if m and m.group(1).lower() in self._labels and text[m.end():].strip():
            return text[m.end():].strip()
        return text

    async def reply(self, role: str, history: list[Turn]) -> str:
        if role not in self.system:
            raise ValueError(f"unknown role {role!r}; expected 'student' or 'teacher'")
        if role == "student" and not history:
            return self._opening
        return self._clean(await self._client.complete(self.messages(role, history)))


class OpenAIBackend:
    """Writes dialogues with a model behind an OpenAI-compatible endpoint; one client for all sessions."""

    name = "openai"

    def __init__(self, cfg: OpenAIEndpointConfig, seed: int = 0):
        self.cfg = cfg
        self.model = cfg.model
        self.client = OpenAIChatClient(cfg, seed=seed)

    def open(self, ctx: DialogueContext) -> OpenAISession:
        return OpenAISession(self.client, ctx)

    async def close(self) -> None:
        await self.client.close()
