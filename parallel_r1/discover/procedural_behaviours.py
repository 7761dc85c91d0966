"""What a procedural teacher does: its good and failing behaviours, how often each teacher quality shows them, the
moves each student profile prefers, and which moves conflict, repair a protest or engage the student."""

from __future__ import annotations

GOOD_BEHAVIOURS = (
    "socratic_question", "checks_understanding", "next_step", "structured_steps", "line_by_line",
    "stays_on_topic", "validation", "reflective", "concise",
)
FAILURE_BEHAVIOURS = (
    "stock_empathy", "answer_reveal", "metaphor", "wall_of_text", "topic_switch", "dismissive", "lecture",
)

QUALITIES = {"strong": 0.4, "mixed": 0.35, "weak": 0.25}  # share of dialogues per teacher quality
FAILURE_RATE = {"strong": 0.05, "mixed": 0.4, "weak": 0.8}  # chance a teacher turn shows a failure
KEEP_GOOD = {"strong": 0.9, "mixed": 0.6, "weak": 0.25}  # chance a failing turn still has a good move
PREFERRED_RATE = {"strong": 0.85, "mixed": 0.6, "weak": 0.35}  # good move fits the profile
EXTRA_GOOD = {"strong": 0.5, "mixed": 0.3, "weak": 0.1}  # chance of a second good move
REPAIR_RATE = {"strong": 0.95, "mixed": 0.6, "weak": 0.15}  # fixes what the student protested about
FAILURE_WEIGHTS = {"stock_empathy": 1.2, "answer_reveal": 1.0, "metaphor": 0.7, "wall_of_text": 0.6,
                   "topic_switch": 0.35, "dismissive": 0.35, "lecture": 0.8}
PROFILE_FAILURE = {"rejects_metaphor": "metaphor", "executive_function_gap": "wall_of_text",
                   "hyperfocus": "topic_switch", "bad_prior_teacher": "dismissive"}
PROFILE_BOOST = 6.0  # how much likelier the profile's own failure is than its base weight says
PREFERRED = {
    "standard": ("socratic_question", "checks_understanding", "next_step"),
    "neurodivergent": ("structured_steps", "concise", "checks_understanding"),
    "bad_prior_teacher": ("validation", "socratic_question", "next_step"),
    "rejects_metaphor": ("line_by_line", "structured_steps", "concise"),
    "executive_function_gap": ("structured_steps", "next_step", "concise"),
    "hyperfocus": ("stays_on_topic", "socratic_question", "checks_understanding"),
}
# The profile's own failure -> the student state it leaves behind (a protest, or withdrawal).
PROTEST = {"metaphor": "protest_metaphor", "wall_of_text": "lost", "topic_switch": "protest_topic",
           "dismissive": "withdrawn"}
# That state -> the good move that repairs it.
REPAIR = {"protest_metaphor": "line_by_line", "lost": "structured_steps", "protest_topic": "stays_on_topic",
          "withdrawn": "validation"}
CONFLICTS = frozenset(frozenset(p) for p in (
    ("wall_of_text", "concise"), ("wall_of_text", "structured_steps"), ("metaphor", "line_by_line"),
    ("topic_switch", "stays_on_topic"), ("dismissive", "validation"), ("stock_empathy", "validation"),
    ("lecture", "socratic_question"), ("lecture", "checks_understanding"), ("lecture", "reflective"),
    ("lecture", "concise"), ("lecture", "structured_steps"),
))
# Moves that hand the student something to do, so the student attempts it.
ENGAGING = frozenset({"socratic_question", "checks_understanding", "next_step", "structured_steps",
                      "line_by_line", "stays_on_topic", "reflective", "concise"})
# Where each move sits in a reply: openers, then the body, then what the student is left with.
OPENERS = ("stock_empathy", "validation", "dismissive")
CLOSERS = ("socratic_question", "reflective", "checks_understanding", "next_step", "topic_switch")
PROBES = ("check", "misconception")  # the card's check question; a test of its misconception
LAYOUTS = ("concise", "wall_of_text")  # shape the whole reply rather than adding a sentence
