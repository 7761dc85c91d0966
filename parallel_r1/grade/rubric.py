"""The heuristic pedagogy rubric: deterministic criterion scores from generic text cues.

Each criterion yields a value and how much evidence backs it; a dialogue's grade aggregates its
teacher turns and adds dialogue-level signals (phrases repeated across turns, the answer given
before the student tried). Confidence says how unambiguous that evidence is.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass

from parallel_r1.data import ScenarioCard, StudentProfileConfig
from parallel_r1.grade import cues as C
from parallel_r1.grade.grade import WEIGHTS, DialogueItem, Grade, applicable_criteria, clamp, weighted_score
from parallel_r1.grade.labels import chat_history
from parallel_r1.grade.patterns import repeated_phrases, stock_phrase_density, words

GRADER_NAME = "heuristic-rubric-v2"

REFERENCE = re.compile(r"\b(?:you said|you mentioned|you wrote|you asked|your (?:answer|idea|guess|question|"
                       r"code|point|example|working|attempt|step)|you'?re right|exactly|not quite|you got|"
                       r"you noticed|you spotted|you'?re asking)\b", re.IGNORECASE)
ATTEMPT = re.compile(r"\d|[=*/&^]|\b(?:i think|maybe|is it|would it be|i got|i get|so it'?s|it'?s|because|"
                     r"i guess|probably)\b", re.IGNORECASE)

# How per-turn values combine over a dialogue: failures weigh in by the worst turn, optional
# good moves (a check, a validating remark) by the best one.
WORST_TURN = ("no_answer_reveal", "tone", "stays_on_topic", "concrete_not_metaphor")
BEST_TURN = ("checks_understanding", "validation", "reflective_openness")


@dataclass(frozen=True)
class TurnContext:
    """One teacher reply and what it answers."""

    response: str
    cues: C.Cues
    student_last: str
    topic: set[str]
    reveal: tuple[float, float]  # (strength, evidence) of stating the final answer: see cues.answer_reveal
    related: float | None  # share of the dialogue's content words (up to 6) the reply reuses; None: no dialogue yet
    known_numbers: set[str]  # numbers the dialogue has stated so far
    results: int  # results the reply states that the dialogue has not (see cues.stated_results)
    attempt: bool  # the student's last message attempts the problem (a number, a claim, a guess)
    student_correct: bool  # the card's answer is known and the student has already given it


def _substantive_questions(c: C.Cues) -> int:
    return max(0, c.questions - c.yes_no_checks)


def _affirm_only(c: C.Cues) -> bool:
    """Praise or confirmation with no hint that anything is off."""
    return c.affirmations > 0 and not c.corrections


def _lecture(c: C.Cues) -> bool:
    return c.declaratives >= 5 and not c.questions


def _uses_numbers(t: TurnContext) -> bool:
    return bool(C.numbers(t.response) & t.known_numbers)


def guidance(t: TurnContext) -> tuple[float, float]:
    """Correct, relevant guidance: a hint, an explanation or a question tied to what the student did; never
    bare praise or a move to the next problem."""
    c = t.cues
    reveal = t.reveal[0]
    related = 0.5 if t.related is None else t.related
    asks = _substantive_questions(c) > 0
    value = (0.15 + 0.3 * related + 0.15 * min(1, c.hints) + 0.15 * min(1, c.corrections) + 0.1 * _uses_numbers(t)
             + 0.1 * min(1.0, c.n_words / 25) + 0.2 * asks - 0.25 * (_affirm_only(c) and not asks)
             - 0.25 * c.move_on - 0.15 * reveal - 0.15 * _lecture(c))
    signals = min(1, c.hints) + min(1, c.corrections) + _affirm_only(c) + c.move_on + (reveal > 0.4)
    return clamp(value), min(1.0, 0.35 + 0.2 * signals)


def mistake_identification(t: TurnContext) -> tuple[float, float]:
    """Whether the reply reacts rightly to the student's attempt: points out what is wrong, and where; or, when
    the student is right, confirms it."""
    c = t.cues
    if t.student_correct:
        return (0.85, 0.6) if c.affirmations else (clamp(0.6 - 0.2 * min(1, c.corrections)), 0.5)
    about = C.overlap(t.response, t.student_last, cap=6) if t.student_last else 0.0
    if not t.attempt:  # nothing to correct yet (the student asked a question)
        return clamp(0.5 + 0.2 * about - 0.2 * _affirm_only(c)), 0.3
    # Praise alone passes over whatever was wrong; praise before a question on the next step may be right.
    passed_over = 0.3 if _substantive_questions(c) == 0 else 0.15
    value = (0.3 + 0.35 * min(1, c.corrections) + 0.1 * (c.corrections >= 2) + 0.2 * about
             + 0.1 * _uses_numbers(t) - passed_over * _affirm_only(c) - 0.2 * c.move_on)
    return clamp(value), min(1.0, 0.4 + 0.3 * min(1, c.corrections) + 0.3 * _affirm_only(c))


def no_answer_reveal(t: TurnContext) -> tuple[float, float]:
    """1 - the reveal strength; a reply that hands the student nothing to answer or do leans toward telling."""
    reveal, evidence = t.reveal
    telling = 0.1 if not (t.cues.questions or t.cues.next_steps or t.cues.imperatives) else 0.0
    return clamp(1.0 - reveal - telling), evidence


def checks_understanding(t: TurnContext) -> tuple[float, float]:
    c = t.cues
    if c.strong_checks:
        return min(1.0, 0.85 + 0.1 * c.strong_checks), 0.9
    if _substantive_questions(c):
        return 0.6, 0.5
    if c.yes_no_checks:
        return 0.35, 0.7
    return 0.1, 0.8


def actionability(t: TurnContext) -> tuple[float, float]:
    """A clear next step for the student: a question to answer or a task to do about this problem, not a
    result handed over or a move to the next one."""
    c = t.cues
    if _substantive_questions(c):
        ask = 1.0
    elif c.next_steps:
        ask = 0.9
    elif c.imperatives or c.asks_student:
        ask = 0.6
    else:
        ask = 0.2 if c.yes_no_checks else 0.0
    related = 0.5 if t.related is None else t.related
    handed = min(1, t.results) if not c.questions else 0
    value = 0.1 + 0.55 * ask + 0.25 * related + 0.1 * (c.asks_student > 0) - 0.2 * handed - 0.2 * c.move_on
    return clamp(value), 0.5 + 0.4 * abs(ask - 0.5)


def coherence(t: TurnContext) -> tuple[float, float]:
    c = t.cues
    topic = C.overlap(t.response, t.topic, cap=3)
    student = C.content_words(t.student_last)
    resp = C.overlap(t.response, student) if student else topic
    related = topic if t.related is None else t.related
    ref = 1.0 if REFERENCE.search(t.response) else 0.0
    switch = 1.0 if c.topic_switches or c.move_on else 0.0
    value = 0.35 + 0.3 * resp + 0.1 * topic + 0.15 * related + 0.15 * ref - 0.4 * switch
    evidence = 0.3 + 0.3 * max(switch, resp) + 0.2 * topic + 0.2 * ref
    return clamp(value), evidence


def tone(t: TurnContext) -> tuple[float, float]:
    c = t.cues
    enc = c.encouraging + c.specific_success
    value = 0.6 + 0.12 * min(3, enc) - 0.35 * min(2, c.dismissive) - (0.1 if c.dismissive and enc else 0.0)
    evidence = 0.35 if not (enc or c.dismissive) else min(1.0, 0.6 + 0.2 * (enc + 2 * c.dismissive))
    return clamp(value), evidence


def concision(t: TurnContext) -> tuple[float, float]:
    c = t.cues
    ideal_max = clamp(3 * len(words(t.student_last)) + 50, 70, 200)
    if c.n_words <= ideal_max:
        value = 1.0 if c.n_words >= 6 else 0.6
    else:
        value = (ideal_max / c.n_words) ** 1.5
    if c.max_line_words > 110:
        value *= 0.8
    return clamp(value), 0.4 + 0.6 * min(1.0, abs(c.n_words - ideal_max) / ideal_max)


def pattern_penalty(t: TurnContext) -> tuple[float, float]:
    return math.exp(-1.2 * t.cues.stock), 0.9 if t.cues.stock else 0.5


def concrete_not_metaphor(t: TurnContext) -> tuple[float, float]:
    c = t.cues
    concrete = min(1.0, 6 * c.concrete / max(1, c.n_words) + 0.2 * min(1, c.list_lines // 2))
    if c.metaphors >= 1:
        return clamp(0.3 - 0.15 * (c.metaphors - 1) + 0.15 * concrete), 0.9
    if c.metaphors:
        return clamp(0.45 + 0.3 * concrete), 0.5
    return clamp(0.55 + 0.45 * concrete), 0.4 + 0.5 * concrete


def structured_steps(t: TurnContext) -> tuple[float, float]:
    c = t.cues
    listed = c.list_lines >= 2
    wall = c.max_line_words > 90 or (c.n_words > 150 and not listed)
    single = (c.imperatives + c.next_steps >= 1 or c.questions == 1) and c.n_words <= 60
    value = 0.35 - 0.35 * wall - (0.1 if c.list_lines > 7 else 0.0)
    if listed:
        value += 0.5
    else:
        value += 0.2 * (c.ordinals >= 2) + 0.3 * single
    evidence = 0.85 if listed or wall else 0.6 if single else 0.4
    return clamp(value), evidence


def stays_on_topic(t: TurnContext) -> tuple[float, float]:
    c = t.cues
    related = max(C.overlap(t.response, t.student_last), C.overlap(t.response, t.topic, cap=3))
    if c.topic_switches:
        return clamp(0.25 - 0.1 * (c.topic_switches - 1) + 0.1 * related), 0.9
    return 0.55 + 0.45 * related, 0.4 + 0.4 * related


def validation(t: TurnContext) -> tuple[float, float]:
    c = t.cues
    # Trust-building moves: acknowledge the experience, reject the label, credit something specific
    # the student did (or set up a small success for them to have).
    success = 1.0 if c.specific_success else 0.5 if c.imperatives + c.next_steps else 0.0
    value = (0.2 + 0.3 * (c.acknowledge > 0) + 0.3 * (c.reframe > 0) + 0.3 * success + 0.1 * (c.encouraging > 0)
             - 0.2 * min(2, c.stock) - 0.5 * min(1, c.dismissive))
    signals = (c.acknowledge > 0) + (c.reframe > 0) + (c.specific_success > 0) + c.stock + c.dismissive
    return clamp(value), min(1.0, 0.35 + 0.2 * signals)


def reflective_openness(t: TurnContext) -> tuple[float, float]:
    c = t.cues
    reveal = t.reveal[0]
    lecture = c.declaratives >= 5 and not c.questions
    value = (0.2 + 0.35 * (c.open_questions > 0) + 0.15 * (_substantive_questions(c) > 0)
             + 0.1 * (c.tentative > 0) + 0.1 * (c.declaratives <= 3) - 0.5 * reveal - 0.15 * lecture)
    signals = (c.open_questions > 0) + (reveal > 0.5) + lecture + (_substantive_questions(c) > 0)
    return clamp(value), min(1.0, 0.35 + 0.2 * signals)


SCORERS = {
    "guidance": guidance, "mistake_identification": mistake_identification, "no_answer_reveal": no_answer_reveal,
    "checks_understanding": checks_understanding,
    "actionability": actionability, "coherence": coherence, "tone": tone, "concision": concision,
    "pattern_penalty": pattern_penalty, "concrete_not_metaphor": concrete_not_metaphor,
    "structured_steps": structured_steps, "stays_on_topic": stays_on_topic, "validation": validation,
    "reflective_openness": reflective_openness,
}


def _student_messages(history: list[dict]) -> list[str]:
    return [m["content"] for m in history if m.get("role") == "user"]


def _topic_words(history: list[dict], scenario: ScenarioCard | None) -> set[str]:
    if scenario is not None:
        return C.content_words(" ".join((scenario.topic, scenario.opening, scenario.goal, *scenario.steps)))
    students = _student_messages(history)
    return C.content_words(students[0]) if students else set()


def _context(history: list[dict], response: str, scenario: ScenarioCard | None) -> TurnContext:
    students = _student_messages(history)
    said = " ".join(m["content"] for m in history if m.get("role") in ("user", "assistant"))
    known = C.numbers(said)
    results = C.stated_results(response, known)
    dialogue = C.content_words(said)
    # Saying the card's opening or steps gives nothing away: the steps are the path a good tutor walks
    # the student along, the answer is where it ends.
    given = " ".join((scenario.opening, *scenario.steps)) if scenario else ""
    if scenario is not None:
        reveal = C.answer_reveal(response, scenario.answer, " ".join(students), given)
    else:  # no answer to compare with: answer markers, or results the dialogue has not stated yet
        strength, evidence = C.answer_reveal(response, None, " ".join(students))
        reveal = (max(strength, min(1.0, 0.45 * results)), max(evidence, 0.3 + 0.2 * min(2, results)))
    return TurnContext(
        response=response, cues=C.extract(response), student_last=students[-1] if students else "",
        topic=_topic_words(history, scenario), reveal=reveal,
        related=C.overlap(response, dialogue, cap=6) if dialogue else None, known_numbers=known, results=results,
        attempt=_answers_the_tutor(history) and bool(ATTEMPT.search(students[-1])),
        student_correct=scenario is not None and C.student_has_answer(scenario.answer, " ".join(students), given),
    )


def _answers_the_tutor(history: list[dict]) -> bool:
    """The last message is the student's and follows a tutor turn (not the opening question)."""
    roles = [m.get("role") for m in history if m.get("role") in ("user", "assistant")]
    return bool(roles) and roles[-1] == "user" and "assistant" in roles


def _confidence(decisiveness: float, evidence: float, consistency: float, n_turns: int) -> float:
    """How unambiguous the evidence is: criteria far from 0.5, cues that fired, teacher turns that agree
    with each other, and enough of them. The raw blend lives in about [0.36, 0.63]; it is stretched to
    [0, 1] so that batches can split high (>= 0.7) and medium (0.5-0.7) confidence."""
    turns = n_turns / (n_turns + 1.5)
    raw = (0.45 * decisiveness + 0.25 * evidence + 0.3 * consistency) * (0.7 + 0.3 * turns)
    return clamp((raw - 0.36) / 0.27)


def _weighted_mean(values: dict[str, float]) -> float:
    return sum(WEIGHTS[k] * v for k, v in values.items()) / sum(WEIGHTS[k] for k in values)


class HeuristicRubricGrader:
    """Deterministic rubric over generic text cues; the default grader (no model, no network)."""

    name = GRADER_NAME

    def _turn_scores(self, history: list[dict], response: str, names: tuple[str, ...],
                     scenario: ScenarioCard | None) -> dict[str, tuple[float, float]]:
        ctx = _context(history, response, scenario)
        return {name: SCORERS[name](ctx) for name in names}

    def grade_turn(self, history: list[dict], response: str, profile: StudentProfileConfig | None = None,
                   scenario: ScenarioCard | None = None) -> Grade:
        """Grade one teacher reply given the history before it (roles user/assistant or student/teacher)."""
        history = chat_history(history)
        scored = self._turn_scores(history, response, applicable_criteria(profile, scenario), scenario)
        criteria = {k: v for k, (v, _) in scored.items()}
        decisiveness = _weighted_mean({k: abs(2 * v - 1) for k, v in criteria.items()})
        evidence = _weighted_mean({k: e for k, (_, e) in scored.items()})
        return Grade(score=weighted_score(criteria), confidence=_confidence(decisiveness, evidence, 0.7, 1),
                     criteria=criteria, grader=self.name)

    def grade_dialogue(self, messages: list[dict], profile: StudentProfileConfig | None = None,
                       scenario: ScenarioCard | None = None) -> Grade:
        """Grade a whole dialogue: its teacher turns aggregated, plus dialogue-level signals."""
        messages = [m for m in messages if m.get("role") in ("user", "assistant")]
        names = applicable_criteria(profile, scenario)
        turns = [(messages[:i], m["content"]) for i, m in enumerate(messages) if m["role"] == "assistant"]
        if not turns:
            return Grade(score=0.0, confidence=0.0, criteria={k: 0.0 for k in names}, grader=self.name,
                         notes=["no teacher turns to grade"])
        per_turn = [self._turn_scores(h, r, names, scenario) for h, r in turns]
        criteria: dict[str, float] = {}
        evidence: dict[str, float] = {}
        for name in names:
            values = [s[name][0] for s in per_turn]
            mean = statistics.fmean(values)
            criteria[name] = (0.5 * mean + 0.5 * min(values) if name in WORST_TURN
                              else 0.5 * mean + 0.5 * max(values) if name in BEST_TURN else mean)
            evidence[name] = statistics.fmean(s[name][1] for s in per_turn)
        notes: list[str] = []
        teacher = [r for _, r in turns]
        density = stock_phrase_density(teacher)
        criteria["pattern_penalty"] = math.exp(-1.2 * density)
        repeats = repeated_phrases(teacher)
        if repeats:
            notes.append(f"phrases repeated across turns: {repeats[:3]}")
            evidence["pattern_penalty"] = max(evidence["pattern_penalty"], 0.9)
        early = self._early_reveal(messages, per_turn)
        if early > 0.5:
            criteria["no_answer_reveal"] *= 1 - 0.3 * early
            notes.append("answer given before the student tried")
        turn_scores = [weighted_score({k: v for k, (v, _) in s.items()}) for s in per_turn]
        consistency = 1 - min(1.0, 3 * statistics.pstdev(turn_scores)) if len(per_turn) > 1 else 0.7
        decisiveness = _weighted_mean({k: abs(2 * v - 1) for k, v in criteria.items()})
        return Grade(
            score=weighted_score(criteria),
            confidence=_confidence(decisiveness, _weighted_mean(evidence), consistency, len(turns)),
            criteria=criteria, grader=self.name, notes=notes,
        )

    def grade_turns(self, pairs: list[tuple[list[dict], str]], profile: StudentProfileConfig | None = None,
                    scenario: ScenarioCard | None = None) -> list[Grade]:
        """Grade (history, reply) pairs, each reply as one turn after its history."""
        return [self.grade_turn(h, r, profile, scenario) for h, r in pairs]

    def grade_many(self, items: list[DialogueItem]) -> list[Grade]:
        """Grade (messages, profile, scenario) items in order."""
        return [self.grade_dialogue(*item) for item in items]

    async def agrade_many(self, items: list[DialogueItem]) -> list[Grade]:
        """`grade_many` for callers inside an event loop (the rubric itself never waits)."""
        return self.grade_many(items)

    async def aclose(self) -> None:
        """Nothing to release; graders share this interface."""

    @staticmethod
    def _early_reveal(messages: list[dict], per_turn: list[dict[str, tuple[float, float]]]) -> float:
        """The strongest reveal in teacher turns before the student's first attempt at the problem."""
        reveals, students, teacher_i = [], 0, 0
        for m in messages:
            if m["role"] == "user":
                students += 1
                if students > 1 and ATTEMPT.search(m["content"]):
                    break
            else:
                reveals.append(1 - per_turn[teacher_i]["no_answer_reveal"][0])
                teacher_i += 1
        return max(reveals, default=0.0)


_DEFAULT = HeuristicRubricGrader()


def grade_turn(history: list[dict], response: str, profile: StudentProfileConfig | None = None,
               scenario: ScenarioCard | None = None) -> Grade:
    """Grade one teacher reply with the default (heuristic) rubric."""
    return _DEFAULT.grade_turn(history, response, profile, scenario)


def grade_dialogue(messages: list[dict], profile: StudentProfileConfig | None = None,
                   scenario: ScenarioCard | None = None) -> Grade:
    """Grade a dialogue in the chat `messages` format with the default (heuristic) rubric."""
    return _DEFAULT.grade_dialogue(messages, profile, scenario)
