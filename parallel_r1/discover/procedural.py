"""The procedural chat backend: seeded teacher–student dialogues of varying teaching quality, no model.

Each dialogue draws a teacher quality (strong / mixed / weak) and, per teacher turn, the behaviours the
teacher shows; both roles are written from the scenario card's material and the phrase banks in
`procedural_text`, and the student reacts in character to what the teacher just did. It is the
embedded default backend of the discover stage and needs no network.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from parallel_r1.data import ALL_CARDS, Turn
from parallel_r1.discover.backend import DialogueContext
from parallel_r1.discover.procedural_behaviours import (
    CLOSERS,
    CONFLICTS,
    ENGAGING,
    EXTRA_GOOD,
    FAILURE_BEHAVIOURS,
    FAILURE_RATE,
    FAILURE_WEIGHTS,
    GOOD_BEHAVIOURS,
    KEEP_GOOD,
    LAYOUTS,
    OPENERS,
    PREFERRED,
    PREFERRED_RATE,
    PROBES,
    PROFILE_BOOST,
    PROFILE_FAILURE,
    PROTEST,
    QUALITIES,
    REPAIR,
    REPAIR_RATE,
)
from parallel_r1.discover.procedural_text import STOCK_EMPATHY, STUDENT, TEACHER, VOICE_TOUCHES

_STATEMENT_STEP = re.compile(r"^(line \d+|read \w+):\s*(.+)$")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _words(text: str) -> int:
    return len(text.split())


def _step_kind(step: str) -> str:
    """"statement" (a literal trace line), "question" (the step asks something) or "action"."""
    if _STATEMENT_STEP.match(step):
        return "statement"
    return "question" if step.endswith("?") else "action"


def _clause(step: str) -> str:
    """A step as a plain clause to build sentences on: a question step keeps only what to do."""
    if _step_kind(step) != "question":
        return step
    return step.split(":")[0] if ":" in step else step.rstrip("?")


class ProceduralBackend:
    """Writes both roles of a dialogue from phrase banks and the card; deterministic in (seed, task.seed)."""

    name = "procedural"
    model = "procedural-v1"

    def __init__(self, seed: int = 0, force_behaviours: Sequence[str] | None = None):
        if force_behaviours is not None:
            unknown = [b for b in force_behaviours if b not in GOOD_BEHAVIOURS + FAILURE_BEHAVIOURS]
            if unknown:
                raise ValueError(f"unknown behaviours in force_behaviours: {unknown}; expected names from "
                                 "GOOD_BEHAVIOURS or FAILURE_BEHAVIOURS")
            if not force_behaviours:
                raise ValueError("force_behaviours must name at least one behaviour (or be None)")
            force_behaviours = tuple(dict.fromkeys(force_behaviours))
        self.seed = seed
        self.force_behaviours = force_behaviours

    def open(self, ctx: DialogueContext) -> ProceduralSession:
        rng = random.Random(f"procedural:{self.seed}:{ctx.task.seed}:{ctx.card.id}")
        return ProceduralSession(ctx, rng, self.force_behaviours)

    async def close(self) -> None:
        return None


class ProceduralSession:
    """One dialogue: samples the teacher's moves per turn and lets the student react to them."""

    def __init__(self, ctx: DialogueContext, rng: random.Random, forced: tuple[str, ...] | None = None):
        self.ctx, self.rng = ctx, rng
        self.forced = forced  # the behaviours of every teacher turn; None samples them per turn
        self.quality = "forced" if forced else rng.choices(list(QUALITIES), weights=list(QUALITIES.values()))[0]
        self.behaviours: list[str] = []
        card = ctx.card
        self.kind = ctx.persona.kind
        self.preferred = (("reflective",) if card.question_type == "koan" else ()) + PREFERRED[self.kind]
        self.stock = rng.choices(list(STOCK_EMPATHY), weights=list(STOCK_EMPATHY.values()))[0]
        self.other_topics = sorted({c.topic for c in ALL_CARDS if c.topic != card.topic})
        self.probes = list(PROBES)  # conceptual questions the teacher has not asked yet
        self.cursor = 0  # the next card step the teacher has not presented yet
        self.progress = 0  # steps the student has got right
        self.misses = 0  # wrong tries so far: each one makes the next try likelier to land
        self.solved = self.withdrawn = False
        self.state = "opening"  # what the student's last message did; the teacher reacts to it
        self.last: tuple[str, ...] = ()  # the teacher's behaviours in its last turn
        self.asked: str | None = None  # the first step or probe the teacher asked about in its last turn
        self.teacher_turns = 0
        self._banks: dict[str, list[str]] = {}

    async def reply(self, role: str, history: list[Turn]) -> str:
        if role == "teacher":
            return self._teacher()
        if role == "student":
            return self._student(first=not history)
        raise ValueError(f"unknown role {role!r}; expected 'student' or 'teacher'")

    # ---------------------------------------------------------------- shared helpers
    def _pick(self, key: str, table: dict[str, tuple[str, ...]] = TEACHER) -> str:
        """A template from a bank, without repeats inside this dialogue until the bank is used up."""
        bank_key = f"{id(table)}:{key}"
        if not self._banks.get(bank_key):
            self._banks[bank_key] = self.rng.sample(table[key], len(table[key]))
        return self._banks[bank_key].pop()

    def _fields(self, step: str | None = None) -> dict[str, str]:
        card, persona = self.ctx.card, self.ctx.persona
        step = step or card.steps[min(self.cursor, len(card.steps) - 1)]
        head, tail = (m.group(1), m.group(2)) if (m := _STATEMENT_STEP.match(step)) else (step, step)
        return {
            "topic": card.topic, "Topic": _cap(card.topic), "name": persona.name, "answer": card.answer,
            "metaphor": card.metaphor, "misconception": card.misconception, "goal": card.goal.split(", and ")[0],
            "check": card.check_question, "Check": _cap(card.check_question), "step": _clause(step),
            "Step": _cap(step), "head": head, "tail": tail,
        }

    def _say(self, key: str, step: str | None = None, table: dict = TEACHER, **extra: str) -> str:
        return self._pick(key, table).format(**{**self._fields(step), **extra})

    def _take_steps(self, k: int) -> list[str]:
        steps = list(self.ctx.card.steps[self.cursor:self.cursor + k])
        self.cursor += len(steps)
        if steps:
            self._ask(steps[0])
        return steps

    def _ask(self, item: str) -> None:
        if self.asked is None:
            self.asked = item

    # ---------------------------------------------------------------- teacher
    def _teacher(self) -> str:
        chosen = list(self.forced) if self.forced else self._sample()
        self.asked = None
        text = self._render(chosen)
        self.behaviours.extend(b for b in chosen if b not in self.behaviours)
        self.last = tuple(chosen)
        self.teacher_turns += 1
        return text

    def _sample(self) -> list[str]:
        rng, q = self.rng, self.quality
        chosen: list[str] = []

        def add(b: str) -> None:
            if b not in chosen and not any(frozenset((b, c)) in CONFLICTS for c in chosen):
                chosen.append(b)

        if self.state in REPAIR and rng.random() < REPAIR_RATE[q]:
            add(REPAIR[self.state])
        failing = rng.random() < FAILURE_RATE[q]
        if failing:
            weights = dict(FAILURE_WEIGHTS)
            if self.kind in PROFILE_FAILURE:
                weights[PROFILE_FAILURE[self.kind]] *= PROFILE_BOOST
            if "stock_empathy" in self.behaviours:
                weights["stock_empathy"] *= 3  # a weak tutor's cliché comes back, turn after turn
            for _ in range(1 + (rng.random() < (0.4 if q == "weak" else 0.15))):
                add(rng.choices(list(weights), weights=list(weights.values()))[0])
        if not failing or rng.random() < KEEP_GOOD[q]:
            pool = self.preferred if rng.random() < PREFERRED_RATE[q] else GOOD_BEHAVIOURS
            add(rng.choice([b for b in pool if b != "reflective" or "reflective" in self.preferred]))
            if rng.random() < EXTRA_GOOD[q]:
                add("checks_understanding" if self.solved else rng.choice(self.preferred))
        return chosen

    def _render(self, chosen: list[str]) -> str:
        rng, topic = self.rng, self.ctx.card.topic
        concise, wall = "concise" in chosen, "wall_of_text" in chosen
        takes_steps = {"next_step", "structured_steps", "line_by_line"} & set(chosen)
        openers = [self._move(b, takes_steps) for b in chosen if b in OPENERS]
        rng.shuffle(openers)
        body = [self._move(b, takes_steps) for b in chosen if b not in OPENERS + CLOSERS + LAYOUTS]
        rng.shuffle(body)
        closers = [self._move(b, takes_steps) for b in chosen if b in CLOSERS and b != "topic_switch"]
        closers += [self._move(b, takes_steps) for b in chosen if b == "topic_switch"]
        if concise and not body and not closers:
            body.append(self._move("concise", takes_steps))
        parts = openers + body + closers
        if self.teacher_turns == 0 and topic.lower() not in " ".join(parts).lower():
            at_start = rng.random() < 0.6 or not openers + body
            at = 0 if at_start else len(openers) + len(body)  # a closing frame still comes before the question
            parts.insert(at, self._say("frame_start" if at_start else "frame_end"))
        if not (concise or wall) and rng.random() < 0.3:
            marker = self._say("marker")
            if self.ctx.persona.name not in " ".join(parts) or self.ctx.persona.name not in marker:
                parts.insert(0, marker)
        if wall:
            return self._wall(parts)
        return "\n".join(self._paragraphs(parts))

    def _paragraphs(self, parts: list[str]) -> list[str]:
        """Sentences run together; a numbered list stands on its own lines."""
        out: list[str] = []
        for p in parts:
            if "\n" in p or not out or "\n" in out[-1]:
                out.append(p)
            else:
                out[-1] += " " + p
        return out

    def _wall(self, parts: list[str]) -> str:
        """One unbroken paragraph of 120+ words: the moves buried in generic explanation."""
        target = self.rng.randint(125, 190)
        filler = self.rng.sample(TEACHER["wall_filler"], len(TEACHER["wall_filler"]))
        middle: list[str] = []
        text = " ".join(parts)
        while _words(text) + sum(map(_words, middle)) < target and filler:
            middle.append(filler.pop().format(**self._fields()))
        cut = self.rng.randint(1, max(1, len(parts)))
        return " ".join(parts[:cut] + middle + parts[cut:]).replace("\n", " ")

    def _move(self, b: str, takes_steps: set[str]) -> str:
        """The text of one behaviour in this turn."""
        card = self.ctx.card
        if b == "stock_empathy":
            return self.stock
        if b == "validation":
            key = {"correct": "validation_correct", "misconception": "validation_misconception",
                   "lost": "validation_lost", "protest_metaphor": "validation_protest",
                   "protest_topic": "validation_protest", "withdrawn": "validation_withdrawn"}.get(self.state)
            if key is None:  # the special card's student quotes the label a prior teacher gave them
                key = "validation_bad_prior" if self.ctx.card.special == "bad_prior_teacher" else "validation_opening"
            return self._say(key)
        if b == "topic_switch":
            return self._say(b, other=self.rng.choice(self.other_topics))
        if b in ("dismissive", "answer_reveal", "metaphor", "reflective"):
            return self._say(b)
        if b == "stays_on_topic":
            return self._say("stays_after_protest" if self.state == "protest_topic" else "stays_on_topic")
        if b == "socratic_question":
            if not takes_steps and (steps := self._take_steps(1)):
                return self._say(f"socratic_{_step_kind(steps[0])}", steps[0])
            return self._probe("probe")
        if b == "checks_understanding":
            return self._probe("checks") if "check" in self.probes else self._say("checks_explain")
        if b in ("next_step", "concise"):
            if not (steps := self._take_steps(1)):
                return self._say("next_step_fallback")
            kind = _step_kind(steps[0])
            return self._say(b if kind == "action" else f"next_{kind}", steps[0])
        if b == "structured_steps":
            steps = self._take_steps(self.rng.randint(2, 3))
            if len(steps) < 2:  # the card's steps are used up: a checklist to consolidate them
                steps += [self._say("review_step") for _ in range(3 - len(steps))]
            lines = [f"{i}. {_cap(s)}" for i, s in enumerate(steps, 1)]
            return "\n".join([self._say("structured_intro"), *lines, self._say("structured_outro")])
        if b == "line_by_line":
            steps = self._take_steps(self.rng.randint(1, 2))
            if not steps:
                return self._say("line_fallback")
            trace = "; ".join(s if _step_kind(s) == "statement" else f"{'then' if i else 'first,'} {_clause(s)}"
                              for i, s in enumerate(steps))
            return self._say("line_by_line", trace=trace, Trace=_cap(trace))
        if b == "lecture":
            rest = card.steps[self.cursor:] or card.steps
            said = [f"{w}, {'' if _step_kind(s) == 'statement' else 'you '}{_clause(s)}." for w, s in
                    zip(("First", "Then", "Next", "Finally"), rest, strict=False)]
            return " ".join([self._say("lecture_intro"), *said, self._say("lecture_close")])
        raise ValueError(f"{b!r} shapes the whole reply; it has no sentence of its own")

    def _probe(self, prefix: str) -> str:
        """A conceptual question (the card's check question or a test of its misconception), each asked once."""
        if not self.probes:
            return self._say("generic_question")
        probe = "check" if prefix == "checks" else self.rng.choice(self.probes)
        self.probes.remove(probe)
        self._ask(probe)
        return self._say(f"{prefix}_{probe}")

    # ---------------------------------------------------------------- student
    def _student(self, first: bool) -> str:
        if first:
            text = self.ctx.card.opening
            return self._voice(text) if self.rng.random() < 0.5 else text
        text = self._reaction(set(self.last))
        return self._voice(text) if self.rng.random() < 0.3 else text

    def _reaction(self, last: set[str]) -> str:
        """Protest the profile's own failure, stay withdrawn after dismissiveness, else respond."""
        kind = self.kind
        own_failure = PROFILE_FAILURE.get(kind)
        if own_failure in last:
            self.state = PROTEST[own_failure]
            self.withdrawn = self.withdrawn or own_failure == "dismissive"
            return self._say(self.state, table=STUDENT)
        prefix = ""
        if self.withdrawn:
            if "validation" not in last:
                self.state = "withdrawn"
                return self._say("withdrawn", table=STUDENT)
            self.withdrawn = False
            prefix = self._say("opened_up", table=STUDENT)
        elif kind == "bad_prior_teacher" and "validation" in last and self.teacher_turns == 1:
            prefix = self._say("opened_up", table=STUDENT)
        return f"{prefix} {self._respond(last)}" if prefix else self._respond(last)

    def _respond(self, last: set[str]) -> str:
        """What an engaged student says to the teacher's last turn."""
        for failure, key, chance in (("metaphor", "mild_metaphor", 0.25), ("wall_of_text", "mild_wall", 0.35),
                                     ("topic_switch", "mild_topic", 0.5)):
            if failure in last and self.rng.random() < chance:
                self.state = "passive"
                return self._say(key, table=STUDENT)
        if last & ENGAGING:
            return self._attempt(last)
        self.state = "passive"
        if "answer_reveal" in last:
            return self._say("after_reveal", table=STUDENT)
        if last & {"lecture", "wall_of_text", "topic_switch", "metaphor"}:
            return self._say("passive", table=STUDENT)
        return self._say("after_stock", table=STUDENT)

    def _attempt(self, last: set[str]) -> str:
        """The student tries what the teacher asked; right more often as they progress, else the misconception."""
        n = len(self.ctx.card.steps)
        p_right = (0.45 + 0.12 * self.progress + 0.1 * self.misses + (0.15 if last & set(self.preferred) else 0.0)
                   - (0.2 if last & set(FAILURE_BEHAVIOURS) else 0.0))
        right = self.rng.random() < p_right
        self.state = "correct" if right else "misconception"
        self.misses += not right
        step = self.asked if self.asked not in PROBES + (None,) else None
        lead = ""
        if step is not None:
            kind = _step_kind(step)
            key = ("attempt_statement" if kind == "statement" else
                   "attempt_step_one" if "structured_steps" in last else "attempt_action")
            lead = self._say(key, step, table=STUDENT) + " "
        if not right:
            return lead + self._say("outcome_misconception", table=STUDENT)
        self.progress += 1
        if not self.solved and (self.progress >= n or self.cursor >= n and self.progress >= n // 2):
            self.solved = True
            return self._say("solved", table=STUDENT)
        if self.kind == "hyperfocus" and (self.solved or "stays_on_topic" in last):
            return self._say("deeper", table=STUDENT)
        if self.solved:
            return self._say("post_solved", table=STUDENT)
        if step is None:  # a conceptual question or an open reflection: the misconception starts to give
            return self._say("doubt", table=STUDENT)
        return lead + self._say("outcome_correct", table=STUDENT)

    def _voice(self, text: str) -> str:
        """Colour a message with the persona's way of writing."""
        voice = self.ctx.persona.voice
        for keyword, how, phrase in VOICE_TOUCHES:
            if keyword in voice:
                if how == "prefix":
                    return f"{phrase} {text}"
                if how == "suffix":
                    return f"{text} {phrase}"
                if how == "first":
                    return re.split(r"(?<=[.?!])\s", text, maxsplit=1)[0]
                if how == "trail":
                    return text.rstrip(".?!") + "..."
                return text[:1].lower() + text[1:] if not text.startswith("I ") else text
        return text
