"""Hand-written dialogues of non-procedural backends (a real LLM's, imported transcripts) for the parallel dataset
tests, and a fake endpoint's replies to them: several good ones per topic, a near-empty one and a stock phrase."""

from __future__ import annotations

import itertools

from parallel_r1.data import Dialogue, Turn

FRACTIONS = [
    "Why can't I just add the tops and the bottoms: 1/2 + 1/3 = 2/5?",
    "Good question. What do you think the bottom number of a fraction tells you?",
    "I guess how many pieces the whole is cut into? But I still don't see why 2/5 is wrong.",
    "Yes, the denominator counts the pieces. So halves and thirds are different sizes: what does that mean here?",
]
LOOPS = [
    "My loop for i in range(1, len(items)) skips the first item and I can't see why.",
    "Let's look at it together: what is the index of the first item in a Python list?",
    "Is it 1? That's what I assumed when I wrote range(1, ...).",
    "Python counts from 0, so range(1, ...) starts at the second item. Which number should range start from?",
]
PLANTS = [
    "How do plants actually get their food? My teacher said sunlight but that sounds weird.",
    "It does sound strange at first. What do you think a plant takes in from its surroundings?",
    "Water from the roots and maybe air? But how does that turn into food?",
    "Right, water and carbon dioxide from the air. What could the sunlight be needed for in that process?",
]
REPLIES = {
    "1/2": [
        "Right, the bottom says how many pieces the whole is cut into. If halves and thirds are different sized "
        "pieces, can you add them as if they were the same size?",
        "Let's test 2/5 with a picture: shade 1/2 of a bar and 1/3 of another bar. Is 2/5 more or less than the 1/2 "
        "you started with?",
        "Try this step: rewrite 1/2 and 1/3 so both are cut into sixths. How many sixths is 1/2, and how many is 1/3?",
    ],
    "range": [
        "Good guess, and many people assume that. Try printing items[0] and items[1]: which one does your loop never "
        "reach?",
        "Let's count together: for a list of three items, write down the indexes range(1, 3) gives you. What is "
        "missing from that list?",
        "What would change if you wrote range(0, len(items)) instead? Try it on a short list and tell me what prints.",
    ],
    "plants": [
        "Good thinking about water and air. Imagine building sugar from those pieces: what would you need to supply "
        "to join them together?",
        "You're close: the plant builds sugar from water and carbon dioxide. Why might it need energy from light to "
        "do that building step?",
        "Let's test your idea: what happens to a plant kept in the dark for a week, even with water and air? What "
        "does that tell you?",
    ],
}
NEAR_EMPTY = "ok"
STOCK = "I completely understand your frustration. This topic is hard."


def make_dialogue(i: int, backend: str, scenario_id: str, texts: list[str], score: float = 0.9) -> Dialogue:
    """A graded dialogue of `backend` with the given turns, student first."""
    turns = [Turn("student" if k % 2 == 0 else "teacher", text) for k, text in enumerate(texts)]
    return Dialogue(
        dialogue_id=f"{backend}-{i:03d}", iteration=i, scenario_id=scenario_id, topic="topic", domain="maths",
        question_type="original", difficulty="easy", is_special=False, profile_kind="standard",
        persona={"name": "Ana", "age": 20, "level": "student", "background": "b", "voice": "v", "struggles": "s",
                 "kind": "standard", "traits": []},
        turns=turns, backend=backend, model="gpt-test" if backend == "openai" else "transcript", seed=i,
        score=score, grader="heuristic")


def real_dialogues() -> list[Dialogue]:
    """Two LLM-written dialogues on cards of ours and one imported transcript on a topic we have no card for."""
    return [make_dialogue(0, "openai", "fractions-add", FRACTIONS),
            make_dialogue(1, "openai", "loops-off-by-one", LOOPS),
            make_dialogue(2, "import", "imported-photosynthesis", PLANTS)]


class VariedResponder:
    """The fake server's replies: to each conversation, in turn, the topic's good replies, a duplicate of the first,
    a near-empty reply and a stock phrase (so six samples of one turn get all six, in whatever order they arrive)."""

    def __init__(self) -> None:
        self.counts: dict[str, itertools.count] = {}

    def topic(self, request: dict) -> str:
        opening = next(m["content"] for m in request["messages"] if m["role"] == "user")
        return next(key for key in REPLIES if key in opening)

    def __call__(self, request: dict) -> str:
        conversation = "\n".join(str(m["content"]) for m in request["messages"])
        k = next(self.counts.setdefault(conversation, itertools.count()))
        good = REPLIES[self.topic(request)]
        return [*good, good[0], NEAR_EMPTY, STOCK][k % (len(good) + 3)]


def all_replies() -> set[str]:
    return {r for replies in REPLIES.values() for r in replies} | {NEAR_EMPTY, STOCK}
