"""The cue reader: the five traits read from how real students write, with every fired cue kept as evidence.

Pure Python (no torch, no Ray). A message is normalised first (lower case, texting spellings such as "wat", "pls",
"1st", "u", "dont" expanded, stretched letters shortened), then matched against the weighted patterns of
`cue_table` (refusals of a picture, apologies for asking, a past teacher's contempt, questions about order and where
to begin, wanting to stay on one point, demands for exact wording; negative weights for hard negatives). Chat
messages with roles add context cues: a bare "ok" / "lost" / "?" right after a long teacher explanation, a refusal
of the picture the teacher just used, resisting the teacher's move to a new topic, apologies in several messages.
A trait is set when its summed weight reaches `THRESHOLD`; each pattern counts once per message.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from parallel_r1.data.profiles import TRAITS, StudentProfileConfig
from parallel_r1.profiles.cue_table import TABLE
from parallel_r1.profiles.messages import Turn, to_turns

THRESHOLD = 2.0
LONG_TEACHER_WORDS = 60  # a teacher turn this long is "a long explanation"

# Texting spellings and common slips -> standard words (whole words only; "cos", "r", "y", "k" stay: maths uses them).
_SPELLINGS = {
    "u": "you", "ur": "your", "pls": "please", "plz": "please", "plss": "please", "pleas": "please", "wat": "what",
    "wut": "what", "wht": "what", "whats": "what's", "1st": "first", "frist": "first", "fisrt": "first",
    "2nd": "second", "nxt": "next", "b4": "before", "dont": "don't", "dnt": "don't", "cant": "can't",
    "im": "i'm", "ive": "i've", "idk": "i don't know", "dunno": "don't know", "wanna": "want to",
    "gonna": "going to", "thx": "thanks", "ty": "thanks", "bc": "because", "cuz": "because", "coz": "because",
    "rly": "really", "sry": "sorry", "srry": "sorry", "soz": "sorry", "abt": "about", "smth": "something",
    "sth": "something", "ppl": "people", "tho": "though", "nvm": "never mind", "didnt": "didn't",
    "doesnt": "doesn't", "isnt": "isn't", "arent": "aren't", "wasnt": "wasn't", "havent": "haven't",
    "couldnt": "couldn't", "wouldnt": "wouldn't", "shouldnt": "shouldn't", "thats": "that's", "teh": "the",
    "wich": "which", "wher": "where", "okay": "ok", "okk": "ok", "kk": "ok", "okie": "ok", "youre": "you're",
    "tchr": "teacher", "exmaple": "example", "exemple": "example", "exampel": "example", "lets": "let's",
    "examles": "examples", "exemples": "examples", "pic": "picture", "w/": "with", "w/o": "without",
    "analogys": "analogies", "anology": "analogy", "anologies": "analogies", "metafor": "metaphor",
}
_WORD = re.compile(r"[\w'/]+")
_STOPWORDS = frozenset("""about after again also because been being between both could does doing each from have
having here into just like more most much only other over same should some such than that their them then there these
they this those through very what when where which while will with would your yours think imagine picture""".split())


def normalize(text: str) -> str:
    """Lower case, straight apostrophes, texting spellings expanded, letters stretched past two shortened."""
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    text = text.replace("\u201c", '"').replace("\u201d", '"')
    text = re.sub(r"([a-z])\1{2,}", r"\1", text)  # "sooo" -> "so", "pleeease" -> "please"
    text = _WORD.sub(lambda m: _SPELLINGS.get(m.group(0), m.group(0)), text)
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class Cue:
    """A weighted pattern for one trait (a negative weight argues against it)."""

    trait: str
    name: str
    pattern: str
    weight: float


CUES: tuple[Cue, ...] = tuple(Cue(trait, name, pattern, weight) for trait, name, weight, pattern in TABLE)
_COMPILED: list[tuple[Cue, re.Pattern]] = [(c, re.compile(c.pattern)) for c in CUES]

# Context: what a short reply is, what a teacher's picture or move to a new topic looks like, how students resist.
_CONFUSED_REPLY = re.compile(r"^(?:wait,? )?(?:i'?m |im )?(?:lost|huh|what|um+|uh+|eh|hm+|\?+|\.\.\.+|what\?+|"
                             r"i don'?t (?:get|understand) (?:it|that|any of (?:it|that))|no idea|confused|too long|"
                             r"i don'?t know)[?!.]*$")
_ACK_REPLY = re.compile(r"^(?:ok|k|sure|fine|yeah|yes|yep|mhm|right|cool|got it|alright|i guess|maybe)[.!]*$")
_TEACHER_PICTURE = re.compile(r"\b(?:imagine|think of|picture|like an?|as if|analogy|metaphor|(?:is|are) like|"
                              r"a bit like|way to see it)\b")
_REACTION = re.compile(r"\b(?:no|not|don'?t|doesn'?t|didn'?t|isn'?t|aren'?t|skip|stop|without|enough|drop|though|"
                       r"confus\w*|lost|makes no sense|mean anything|actually|literally|really)\b")
_PLEASED = re.compile(r"\b(?:makes sense|got it|i see|that helps|helped|love|great|nice|cool|clicked)\b")
_TEACHER_MOVES_ON = re.compile(
    r"\b(?:move on (?:to|from)|moving on to|next (?:topic|up|chapter|section|unit)|let'?s (?:leave|move on|switch|"
    r"start on|turn to|look at (?:the )?next|finish)|that covers|that'?s (?:the end|it for)|end of the "
    r"(?:section|topic|chapter)|(?:shall|should) we (?:do|move|go|try) (?:on to )?(?:the )?next|on to the next)\b")
_RESISTS = re.compile(r"^(?:not yet|wait|no|hold on|already|but|hmm,? but)\b|\b(?:still|not yet|not done|not finished|"
                      r"can we stay|stay on|more (?:about|on)|do more|go back)\b")


def _short_reply_cues(text: str, previous_teacher: Turn | None) -> list[tuple[Cue, str]]:
    """Cues of a very short reply, stronger right after a long teacher explanation."""
    long_before = previous_teacher is not None and previous_teacher.words >= LONG_TEACHER_WORDS
    if _CONFUSED_REPLY.match(text):
        if long_before:
            return [(Cue("executive_function_gap", "lost after a long explanation", "", 2.0), text)]
        return [(Cue("executive_function_gap", "one-word confusion", "", 0.5), text)]
    if _ACK_REPLY.match(text):
        if long_before:
            return [(Cue("executive_function_gap", "bare 'ok' after a long explanation", "", 1.0), text),
                    (Cue("bad_prior_teacher", "bare 'ok' after a long explanation", "", 0.5), text)]
        return [(Cue("bad_prior_teacher", "minimal reply", "", 0.25), text)]
    return []


def _content_words(text: str) -> set[str]:
    return {w.rstrip("s") for w in re.findall(r"[a-z]{4,}", text) if w not in _STOPWORDS}


def _teacher_context_cues(text: str, teacher: Turn | None) -> list[tuple[Cue, str]]:
    """A refusal of the picture the teacher just drew; resisting the teacher's move to a new topic."""
    if teacher is None:
        return []
    said = normalize(teacher.content)
    found = []
    picture = _TEACHER_PICTURE.search(said)
    reaction = _REACTION.search(text)
    if picture and reaction and not _PLEASED.search(text):
        shared = _content_words(said[picture.start():]) & _content_words(text)
        if shared:
            found.append((Cue("rejects_metaphor", "refuses the teacher's picture", "", 2.5),
                          f"{reaction.group(0)} ... {sorted(shared)[0]}"))
        else:
            found.append((Cue("rejects_metaphor", "pushes back on the teacher's picture", "", 1.0), reaction.group(0)))
    if _TEACHER_MOVES_ON.search(said) and (resist := _RESISTS.search(text)):
        found.append((Cue("hyperfocus_trait", "resists the move to a new topic", "", 2.0), resist.group(0)))
    return found


@dataclass(frozen=True)
class Evidence:
    """A fired cue: the trait, the cue's name, the phrase that matched, which message (its index in what was
    passed) and the weight it added."""

    trait: str
    cue: str
    phrase: str
    message: int
    weight: float

    def to_dict(self) -> dict[str, Any]:
        return {"trait": self.trait, "cue": self.cue, "phrase": self.phrase, "message": self.message,
                "weight": self.weight}


@dataclass(frozen=True)
class CueReading:
    """Summed cue weight per trait, the profile they give, and the evidence."""

    profile: StudentProfileConfig
    scores: dict[str, float]
    evidence: list[Evidence] = field(default_factory=list)


def cue_table_digest() -> str:
    """A digest of every cue and setting: a classifier fitted on cue scores is stale when it changes."""
    table = repr([(c.trait, c.pattern, c.weight) for c in CUES]) + f"{THRESHOLD}:{LONG_TEACHER_WORDS}"
    table += repr(sorted(_SPELLINGS.items())) + "".join(
        p.pattern for p in (_CONFUSED_REPLY, _ACK_REPLY, _TEACHER_PICTURE, _REACTION, _PLEASED, _TEACHER_MOVES_ON,
                            _RESISTS))
    return hashlib.sha256(table.encode()).hexdigest()


def message_evidence(turn: Turn, previous_teacher: Turn | None = None) -> list[Evidence]:
    """The cues one student message fires (each pattern once), read against the teacher turn just before it."""
    text = normalize(turn.content)
    found = []
    for cue, pattern in _COMPILED:
        if m := pattern.search(text):
            found.append(Evidence(cue.trait, cue.name, m.group(0).strip(), turn.index, cue.weight))
    for cue, phrase in _short_reply_cues(text, previous_teacher) + _teacher_context_cues(text, previous_teacher):
        found.append(Evidence(cue.trait, cue.name, phrase, turn.index, cue.weight))
    return found


def conversation_evidence(turns: Sequence[Turn]) -> list[Evidence]:
    """The cues of every student turn, and apologies repeated over several messages."""
    evidence, previous_teacher, apologies = [], None, 0
    for turn in turns:
        if turn.role == "teacher":
            previous_teacher = turn
        elif turn.role == "student":
            found = message_evidence(turn, previous_teacher)
            if any(e.cue == "sorry" for e in found):
                apologies += 1
                if apologies == 2:
                    found.append(Evidence("bad_prior_teacher", "apologises in several messages", "sorry",
                                          turn.index, 1.0))
            evidence.extend(found)
            previous_teacher = None
    return evidence


def scores_from_evidence(evidence: Sequence[Evidence]) -> dict[str, float]:
    scores = dict.fromkeys(TRAITS, 0.0)
    for e in evidence:
        scores[e.trait] += e.weight
    return {t: round(s, 4) for t, s in scores.items()}


def read_cues(messages: str | Sequence[Any]) -> CueReading:
    """The cue reading of a conversation (strings: the student's messages; or chat messages with roles)."""
    evidence = conversation_evidence(to_turns(messages))
    scores = scores_from_evidence(evidence)
    profile = StudentProfileConfig(**{t: scores[t] >= THRESHOLD for t in TRAITS})
    return CueReading(profile, scores, evidence)
