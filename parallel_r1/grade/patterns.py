"""Pattern-density analysis: stock phrases, phrases repeated verbatim, and templated openers.

A model fine-tuned on its own transcripts learns these instead of pedagogy, so the rubric penalises
them per dialogue and the batch stage caps them per training set.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Known clichéd empathy / filler phrases of chat tutors (matched case-insensitively, as regexes).
STOCK_PHRASES = (
    r"i (?:completely |totally |fully |really )?understand (?:your|the|how) (?:frustrat\w+|confus\w+|feel\w*)",
    r"i (?:completely |totally )?(?:get|hear) (?:it|you|that)\b(?! (?:wrong|right))",
    r"(?:that'?s |what )?(?:a |an )?(?:really |very )?(?:great|good|excellent|fantastic|wonderful) question",
    r"no worries(?: at all)?",
    r"don'?t worry(?:,| at all| about it|[.!])",
    r"you'?ve got this",
    r"(?:it'?s|that'?s) (?:completely |totally |perfectly |absolutely )?(?:normal|okay|ok|natural|valid) to "
    r"(?:feel|be|struggle|find)",
    r"(?:your feelings are|that'?s (?:totally|completely)) valid",
    r"i'?m (?:here|always here) (?:to help|for you)",
    r"(?:i'?d be |i'?m )?happy to help",
    r"(?:i )?hope (?:this|that) helps",
    r"feel free to (?:ask|reach out|let me know)",
    r"let me know if you have any (?:other |more |further )?questions",
    r"you'?re doing (?:great|amazing|awesome|fantastic)",
    r"(?:thank you|thanks) (?:so much )?for sharing",
    r"i appreciate you (?:sharing|asking|being)",
    r"let'?s dive (?:in|into|right in)",
    r"rest assured",
    r"(?:absolutely|certainly|of course)! ",
    r"(?:you'?re|you are) not alone",
    r"many (?:students|people|learners) (?:struggle|find|feel)",
    r"at the end of the day",
    r"it'?s all part of the (?:learning )?(?:process|journey)",
    r"believe in yourself",
    r"every(?:one|body) learns at (?:their|your) own pace",
    r"take a deep breath",
)
_STOCK_RE = re.compile("|".join(f"(?:{p})" for p in STOCK_PHRASES), re.IGNORECASE)

REPEAT_NGRAM = 6  # a run of this many words repeated verbatim across teacher turns is a templated phrase
OPENER_WORDS = 4
_WORD_RE = re.compile(r"[a-z0-9']+")
_BOUNDARY = re.compile(r"[.!?;:\n]+(?:\s|$)|\n")


def words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower().replace("’", "'"))


def stock_phrases(text: str) -> list[str]:
    """The stock phrases in one message, lower-cased, in order."""
    return [m.group(0).strip(" !").lower() for m in _STOCK_RE.finditer(text.replace("’", "'"))]


def without_stock_phrases(text: str) -> str:
    return _STOCK_RE.sub(" ", text.replace("’", "'"))


def opener(text: str, n: int = OPENER_WORDS) -> str:
    """The first n words of a message, normalised: the unit of templated openers."""
    return " ".join(words(text)[:n])


def _chunks(text: str) -> list[list[str]]:
    """Words of each sentence or clause: repeated phrases never straddle a sentence boundary."""
    return [w for w in (words(part) for part in _BOUNDARY.split(text)) if w]


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def repeated_phrases(teacher_turns: list[str], n: int = REPEAT_NGRAM) -> list[str]:
    """Phrases (maximal runs of n-grams) a turn repeats verbatim from an earlier turn."""
    seen: set[tuple[str, ...]] = set()
    found: list[str] = []
    for text in teacher_turns:
        chunks = _chunks(text)
        found += [p for tokens in chunks for p in _spans(tokens, seen, n)]
        seen.update(g for tokens in chunks for g in _ngrams(tokens, n))
    return found


def stock_phrase_density(teacher_turns: list[str]) -> float:
    """Stock phrases per teacher turn: known clichés plus phrases repeated verbatim across turns."""
    if not teacher_turns:
        return 0.0
    count = sum(len(stock_phrases(t)) for t in teacher_turns) + len(repeated_phrases(teacher_turns))
    return count / len(teacher_turns)


def teacher_turns_of(dialogue: Any) -> list[str]:
    """Teacher messages of a Dialogue record or of a chat `messages` list."""
    if isinstance(dialogue, list):
        return [m["content"] for m in dialogue if m.get("role") == "assistant"]
    return [t.content for t in dialogue.turns if t.role == "teacher"]


@dataclass
class PatternReport:
    """The most repeated teacher phrases and openers of a corpus, with counts."""

    n_dialogues: int
    n_teacher_turns: int
    mean_density: float
    opener_diversity: float  # distinct openers / teacher turns
    top_openers: list[tuple[str, int]] = field(default_factory=list)
    top_phrases: list[tuple[str, int]] = field(default_factory=list)  # counted in dialogues
    top_stock_phrases: list[tuple[str, int]] = field(default_factory=list)

    def to_markdown(self) -> str:
        lines = [
            "## Teacher pattern density", "",
            f"- dialogues: {self.n_dialogues}, teacher turns: {self.n_teacher_turns}",
            f"- mean stock-phrase density: {self.mean_density:.3f} per teacher turn",
            f"- opener diversity: {self.opener_diversity:.3f} (distinct openers / teacher turns)",
        ]
        for title, unit, rows in (
            ("Most repeated openers", "turns", self.top_openers),
            ("Most repeated phrases", "dialogues", self.top_phrases),
            ("Stock phrases", "occurrences", self.top_stock_phrases),
        ):
            lines += ["", f"### {title}", "", f"| phrase | {unit} |", "|---|---:|"]
            lines += [f"| {phrase.replace('|', '/')} | {count} |" for phrase, count in rows] or ["| (none) | 0 |"]
        return "\n".join(lines) + "\n"


def _spans(tokens: list[str], grams: set[tuple[str, ...]], n: int) -> list[str]:
    """Maximal runs of consecutive n-grams of `tokens` that are in `grams`, as phrases."""
    ngrams = _ngrams(tokens, n)
    spans, i = [], 0
    while i < len(ngrams):
        if ngrams[i] in grams:
            j = i
            while j + 1 < len(ngrams) and ngrams[j + 1] in grams:
                j += 1
            spans.append(" ".join(tokens[i:j + n]))
            i = j + 1
        else:
            i += 1
    return spans


def pattern_report(dialogues: list[Any], top_k: int = 20, n: int = 4, min_count: int = 2) -> PatternReport:
    """Openers, phrases and stock phrases repeated across a corpus (Dialogue records or message lists).

    A phrase is a maximal run of n-grams that each occur in at least `min_count` dialogues; phrases
    are counted in dialogues, openers and stock phrases in turns.
    """
    per_dialogue = [[c for t in teacher_turns_of(d) for c in _chunks(t)] for d in dialogues]
    texts = [t for d in dialogues for t in teacher_turns_of(d)]
    openers = Counter(opener(t) for t in texts if words(t))
    gram_df = Counter(g for turns in per_dialogue for g in {g for tokens in turns for g in _ngrams(tokens, n)})
    frequent = {g for g, c in gram_df.items() if c >= min_count}
    phrases = Counter(p for turns in per_dialogue
                      for p in {p for tokens in turns for p in _spans(tokens, frequent, n)})
    stock = Counter(p for t in texts for p in stock_phrases(t))
    densities = [stock_phrase_density(teacher_turns_of(d)) for d in dialogues if teacher_turns_of(d)]
    return PatternReport(
        n_dialogues=len(dialogues),
        n_teacher_turns=len(texts),
        mean_density=sum(densities) / len(densities) if densities else 0.0,
        opener_diversity=len(openers) / len(texts) if texts else 0.0,
        top_openers=[(o, c) for o, c in openers.most_common(top_k) if c >= min_count],
        top_phrases=sorted(((p, c) for p, c in phrases.items() if c >= min_count),
                           key=lambda pc: (-pc[1], -len(pc[0].split()), pc[0]))[:top_k],
        top_stock_phrases=stock.most_common(top_k),
    )
