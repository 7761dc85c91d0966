"""Generic cues of a tutor's reply: questions, imperatives, answer statements, validation, structure,
metaphor and topic-switch markers, lexical overlap.

They describe any tutor's text (a person, an LLM, a simulator), never one generator's templates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parallel_r1.grading.patterns import stock_phrases, words

STOPWORDS = frozenset("""
a an the and or but if so of to in on at by for with from as is are was were be been being am it its it's
this that these those there here then than too very can could would should will shall may might must do does
did done doing have has had having i me my we us our you your yours he she they them their what which who
whom whose when where why how all any both each few more most other some such no nor not only own same just
about into over after before again further once up down out off under until while also ok okay yes yeah let
let's get got i'm you're we're that's what's don't doesn't isn't can't won't i'd you'd i've you've thing things
really like one way much many well now see think know want need make made go going because
""".split())

_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_LIST_LINE = re.compile(r"^\s*(?:\d+[.)]|step \d+\s*[:.)-]|[-*•])\s+", re.IGNORECASE | re.MULTILINE)
_LEAD = re.compile(r"^(?:\s*(?:\d+[.)]|step \d+\s*[:.)-]|[-*•]|now|first|next|then|so|ok|okay|alright|"
                   r"right|great|good|nice|finally|after that|second|third)\b[,:.]?\s*)+", re.IGNORECASE)


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


YES_NO_CHECK = _rx(r"\b(?:does (?:that|this|it) (?:make sense|help|click)|makes? sense\?|do you (?:understand|get "
                   r"it|see)|got it\?|(?:is that|all) clear|any questions|(?:ok|okay|right|follow|with me)\?)")
STRONG_CHECK = _rx(
    r"\b(?:in your own words|explain|what (?:would|will|might|could) (?:happen|change|you)|what happens (?:if|when|"
    r"to)|what do you (?:get|notice|think|expect|predict|see)|what did you get|why do you think|how would you|"
    r"how (?:do|can|could) you (?:know|check|tell|be sure)|(?:can|could) you (?:tell|show|walk|predict|find|work|"
    r"compute|figure|spot|say|check|try|write|give|fill|list|count|name|describe|trace)|what (?:is|are|was|'s) "
    r"(?:the|your|it|x|\w+ (?:of|after|at|in))|which (?:one|part|line|step|value|number|bucket|address|term)|"
    r"predict|why (?:does|is|did|would|do|doesn't|isn't)|how (?:many|much|does|did|would|do|is)|where does)"
)
IMPERATIVE_VERBS = frozenset("""
try write compute calculate work pick choose list count run print draw fill check plug substitute add
subtract divide multiply find compare trace start take look change rewrite expand apply test read note mark
circle label sketch type copy set put use replace solve simplify factor estimate guess predict tell explain show
describe say name consider notice imagine jot make move open build continue repeat keep figure sum undo
evaluate graph plot convert combine identify underline highlight focus spot give walk ask follow
""".split())
NEXT_STEP = _rx(
    r"\b(?:your turn|(?:the |your )?next step|your next|have a go|give it a (?:try|go|shot)|go ahead|try (?:it|"
    r"this|that|to|writing|computing|working|again|one|doing)|now (?:you|try|can you|what)|start (?:by|with)|"
    r"step (?:1|one)\b|let'?s (?:try|write|compute|start|work|look|trace|count|check|pick|take|figure|draw|list|"
    r"build|fill|do|walk|find|test|plug|add|divide|multiply|subtract|solve|begin))"
)
ANSWER_MARKER = _rx(
    r"\b(?:the (?:final |correct |right |real )?(?:answer|result|solution|reason) is|so the answer|here'?s the "
    r"(?:answer|solution|fix|fixed|corrected|full|complete)|the fix is|(?:which|that|this) (?:gives|equals|"
    r"means)(?: you)?|therefore|thus|hence|which is why|that'?s why)\b"
)
EQUALS_RESULT = re.compile(r"=\s*-?\(?\d")
DISMISSIVE = _rx(
    r"\b(?:obviously|clearly you|it'?s (?:really |very |so |pretty )?(?:easy|simple|basic|trivial|elementary)|"
    r"this is (?:really |very |so )?(?:easy|simple|basic|trivial)|as i (?:already )?(?:said|explained|told you)|"
    r"i (?:already|just) (?:told|explained|said)|you should (?:already )?(?:know|have known|remember)|everyone "
    r"knows|not that hard|pay attention|come on|seriously[,?!]|just (?:memori[sz]e|accept|do it|remember|follow "
    r"the rule)|because that'?s (?:the rule|how it is)|that'?s just how|doesn'?t matter why|you'?re overthinking|"
    r"not rocket science|we don'?t have time|read (?:it|the question) again|how (?:do|can|could) you not|"
    r"any (?:child|kid|beginner) (?:can|knows)|no excuses?|stop (?:asking|complaining|overthinking)|wrong[.!]|"
    r"that'?s (?:wrong|incorrect)[.!]|why would you|i don'?t know why you)"
)
ENCOURAGING = _rx(
    r"\b(?:good|nice|great|well done|exactly|excellent|spot on|you'?re (?:right|close|on the right track|getting "
    r"(?:there|it))|that'?s (?:right|it|correct|a (?:good|fair|sharp|smart|real))|interesting|close[!,.]|you'?ve "
    r"(?:got|spotted|found|noticed|done)|it'?s okay to|mistakes are|common (?:mix-?up|mistake|confusion)|"
    r"fair (?:question|point)|thanks for|well spotted|good (?:catch|thinking|instinct)|you can do)"
)
TENTATIVE = _rx(r"\b(?:perhaps|maybe|might|i wonder|possibly|what if|it seems|could it be)\b")
OPEN_QUESTION = _rx(
    r"\b(?:what do you (?:think|notice|make of|feel|imagine|expect|suppose|see)|what'?s your (?:sense|intuition|"
    r"guess|take|hunch)|why (?:might|would|do you think)|how (?:might|would you|do you see)|what would it mean|"
    r"what if|where do you think|wonder|curious|sit with|notice|what comes to mind|what stands out|how does "
    r"that (?:sit|feel)|what (?:could|might) (?:that|it|this) (?:mean|tell))"
)
METAPHOR = _rx(
    r"\b(?:(?:is|are|'s|'re|was|were|kind of|sort of|just|much|works|acts|behaves|a bit|feels|looks)\s+like\s+"
    r"(?:a|an|the|when|you|having|your|walking|climbing|trying|putting|two|some|if)|think of (?:it|this|that|"
    r"them|these|a|an|the \w+|\w+) (?:as|like)|imagine (?:a|an|you|you'?re|that|if|yourself|we|being|it)|"
    r"picture (?:a|an|this|it|yourself|that)|analog(?:y|ies|ous)|metaphor|as if|as though|pretend|similar to "
    r"(?:a|an|how))\b"
)
WEAK_METAPHOR = _rx(r"\bimagine\b")
TOPIC_SWITCH = _rx(
    r"\b(?:(?:let'?s |we'?ll |we should |time to )?mov(?:e|ing) on(?! to (?:the )?(?:next )?(?:step|line|part|digit|"
    r"row|one))|(?:next|another|a different|a new) (?:topic|worksheet|chapter|lesson|subject)|change (?:the )?"
    r"(?:topic|subject)|switch(?:ing)? (?:gears|topics?)|let'?s (?:leave|park|skip|set aside|put aside|drop) "
    r"(?:that|this|it|the)|come back to (?:that|this|it) later|back to the (?:worksheet|lesson|exercise|syllabus|"
    r"plan)|(?:that'?s|it'?s) (?:beyond|outside|not (?:important|relevant|on the|part of))|not (?:important|"
    r"relevant|needed|necessary) (?:right now|for now|here|for this)|don'?t worry about (?:why|the why|that "
    r"part|the details|the proof)|anyway,|enough about)"
)
ACKNOWLEDGE = _rx(
    r"\b(?:your (?:last |previous |old |former )?teacher|(?:were|was|been) told|told you|(?:that|it) sounds "
    r"(?:hard|frustrating|discouraging|painful|rough|awful|tough|unfair)|i'?m sorry (?:that|you)|that must have|"
    r"that (?:experience|comment|label)|you asked|it took (?:courage|guts)|after (?:that|being told))"
)
REFRAME = _rx(
    r"\b(?:(?:that'?s|it'?s|that is|it is) (?:simply )?(?:not true|not a fact|a myth|false)|isn'?t true|not "
    r"(?:a|an) \w+ person|anyone can|everyone can|is a skill|can be learned|learnable|not (?:about|a matter of) "
    r"(?:being|talent)|you'?re not (?:bad|stupid|slow|behind|hopeless)|not your fault|nothing wrong with "
    r"(?:you|asking)|no such thing as|(?:visual|any) learners? can|you can (?:learn|do|read|get))"
)
SPECIFIC_SUCCESS = _rx(
    r"\b(?:you (?:just |already )?(?:did|found|got|spotted|worked|figured|noticed|computed|read|drew|solved|"
    r"identified|caught|picked|wrote)|you'?ve (?:just |already )?(?:done|found|got|spotted|worked|figured|noticed|"
    r"computed|solved|read)|(?:that'?s|is) (?:exactly )?(?:right|correct)|exactly( right)?[.!]|spot on)"
)
ORDINAL = _rx(r"\b(?:first(?:ly)?|second(?:ly)?|third|then|next|after that|finally|lastly|step (?:\d+|one|two|"
              r"three))\b")
CONCRETE_TOKEN = re.compile(r"`[^`]+`|0x[0-9a-f]+|\b\d+(?:[./]\d+)?\b|[=*&<>+\-/^%|]|\[\w*\]|\w+\(\w*\)")


@dataclass(frozen=True)
class Cues:
    """Counts of the cues in one tutor message."""

    n_words: int
    n_sentences: int
    max_line_words: int  # the longest unbroken paragraph, in words
    questions: int  # sentences ending in '?'
    ends_with_question: bool
    strong_checks: int  # questions / prompts asking to explain, predict or apply
    yes_no_checks: int  # "does that make sense?"
    imperatives: int  # sentences that tell the student to do something
    next_steps: int  # explicit next-step markers ("your turn", "let's try", "start by")
    declaratives: int  # sentences that are neither questions nor imperatives
    answer_markers: int
    equals_results: int  # "= 5" in a declarative sentence
    list_lines: int  # numbered or bulleted lines
    ordinals: int  # first / then / next / step 2
    metaphors: float
    topic_switches: int
    dismissive: int
    encouraging: int  # outside stock phrases
    tentative: int
    open_questions: int
    acknowledge: int
    reframe: int
    specific_success: int
    stock: int
    concrete: int  # numbers, code tokens, symbols


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT_SPLIT.split(text) if s and s.strip()]


def content_words(text: str) -> set[str]:
    """Lower-cased words minus stopwords, with a light plural/ing stem."""
    out = set()
    for w in words(text):
        w = w.strip("'")
        if w in STOPWORDS or (len(w) < 2 and not w.isdigit()):
            continue
        if len(w) > 4 and w.endswith("ing"):
            w = w[:-3]
        elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.add(w)
    return out


def _is_imperative(sentence: str) -> bool:
    body = _LEAD.sub("", sentence).lstrip("*_`\"' ")
    head = words(body[:40])
    if not head:
        return False
    if head[0] in ("please", "just") and len(head) > 1:
        head = head[1:]
    return head[0] in IMPERATIVE_VERBS and not sentence.rstrip().endswith("?") or head[:2] == ["let's"] + head[1:2]


def extract(text: str) -> Cues:
    sents = sentences(text)
    questions = [s for s in sents if s.endswith("?")]
    imperative = [s for s in sents if not s.endswith("?") and _is_imperative(s)]
    declarative = [s for s in sents if not s.endswith("?") and s not in imperative]
    no_stock = text
    stock = stock_phrases(text)
    for phrase in stock:
        no_stock = re.sub(re.escape(phrase), " ", no_stock, flags=re.IGNORECASE)
    lines = [ln for ln in text.splitlines() if ln.strip()] or [""]
    metaphors = len(METAPHOR.findall(text))
    weak = len(WEAK_METAPHOR.findall(text)) - len(re.findall(r"\bimagine\b", " ".join(
        m.group(0) for m in METAPHOR.finditer(text)), re.IGNORECASE))
    return Cues(
        n_words=len(words(text)),
        n_sentences=len(sents),
        max_line_words=max(len(words(ln)) for ln in lines),
        questions=len(questions),
        ends_with_question=bool(sents) and sents[-1].endswith("?"),
        strong_checks=sum(1 for s in questions if STRONG_CHECK.search(s))
        + sum(1 for s in imperative if re.search(r"\b(?:explain|tell me|show me|predict|in your own words)",
                                                 s, re.IGNORECASE)),
        yes_no_checks=sum(1 for s in questions if YES_NO_CHECK.search(s)),
        imperatives=len(imperative),
        next_steps=len(NEXT_STEP.findall(text)),
        declaratives=len(declarative),
        answer_markers=len(ANSWER_MARKER.findall(text)),
        equals_results=sum(len(EQUALS_RESULT.findall(s)) for s in declarative),
        list_lines=len(_LIST_LINE.findall(text)),
        ordinals=len(ORDINAL.findall(text)),
        metaphors=metaphors + 0.5 * max(0, weak),
        topic_switches=len(TOPIC_SWITCH.findall(text)),
        dismissive=len(DISMISSIVE.findall(text)),
        encouraging=len(ENCOURAGING.findall(no_stock)),
        tentative=len(TENTATIVE.findall(text)),
        open_questions=sum(1 for s in questions if OPEN_QUESTION.search(s)),
        acknowledge=len(ACKNOWLEDGE.findall(text)),
        reframe=len(REFRAME.findall(text)),
        specific_success=len(SPECIFIC_SUCCESS.findall(text)),
        stock=len(stock),
        concrete=len(CONCRETE_TOKEN.findall(text)),
    )


def overlap(text: str, reference: str | set[str], cap: int = 4) -> float:
    """Share of the reference's content words (up to `cap` of them) that the text reuses, in [0, 1]."""
    ref = reference if isinstance(reference, set) else content_words(reference)
    if not ref:
        return 0.0
    return min(1.0, len(content_words(text) & ref) / min(cap, len(ref)))


def answer_reveal(response: str, answer: str | None, known: str) -> tuple[float, float]:
    """How strongly the response states the final answer the student has not produced yet.

    Returns (strength, evidence), both in [0, 1]. With a card's answer, strength is the share of the
    answer's key words and numbers (those not already in `known`: the student's messages and the
    opening) the response states, questions counting half; without one it rests on generic markers
    ("the answer is", "= 5"). The student already having said most of the answer means no reveal.
    """
    cues_text = response
    markers = len(ANSWER_MARKER.findall(cues_text))
    decl = " ".join(s for s in sentences(cues_text) if not s.endswith("?"))
    equals = len(EQUALS_RESULT.findall(decl))
    marker_strength = min(1.0, 0.35 * markers + 0.25 * equals)
    if not answer:
        return marker_strength * 0.8, 0.3 + 0.5 * min(1.0, markers + equals)
    key = _key_terms(answer)
    remaining = key - _key_terms(known)
    if not key or len(remaining) < 0.34 * len(key):
        return 0.0, 0.6  # nothing left to give away: the student has (nearly) said it
    questions = " ".join(s for s in sentences(cues_text) if s.endswith("?"))
    weight = {t: 2.0 if _is_symbolic(t) else 1.0 for t in remaining}
    total = sum(weight.values())
    said = _key_terms(decl)
    asked = _key_terms(questions) - said
    coverage = (sum(weight[t] for t in remaining & said) + 0.5 * sum(weight[t] for t in remaining & asked)) / total
    strength = min(1.0, max(coverage * 1.25 - 0.1, 0.0) + 0.5 * marker_strength * coverage)
    evidence = 0.55 + 0.45 * abs(2 * min(1.0, strength) - 1)
    return min(1.0, strength), evidence


def _key_terms(text: str) -> set[str]:
    terms = content_words(text)
    terms |= {t for t in re.findall(r"[\w*&/^.()]+", text.lower()) if _is_symbolic(t)}
    return terms


def _is_symbolic(token: str) -> bool:
    return any(c.isdigit() for c in token) or any(c in "*&/^()" for c in token)
