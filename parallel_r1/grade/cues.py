"""Generic cues of a tutor's reply: questions, imperatives, answer statements, validation, structure,
metaphor and topic-switch markers, lexical overlap.

They describe any tutor's text (a person, an LLM, a simulator), never one generator's templates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parallel_r1.grade.grade import clamp
from parallel_r1.grade.patterns import stock_phrases, without_stock_phrases, words

STOPWORDS = frozenset("""
a an the and or but if so of to in on at by for with from as is are was were be been being am it its it's
this that these those there here then than too very can could would should will shall may might must do does
did done doing have has had having i me my we us our you your yours he she they them their what which who
whom whose when where why how all any both each few more most other some such no nor not only own same just
about into over after before again further once up down out off under until while also ok okay yes yeah let
let's get got i'm you're we're that's what's don't doesn't isn't can't won't i'd you'd i've you've thing things
really like one way much many well now see think know want need make made go going because
""".split())

_CLAUSE = re.compile(r"[,;:—–]\s+|\s+-\s+")
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+")
_LIST_LINE = re.compile(r"^\s*(?:\*\*|__)?(?:\d+[.)]|step \d+\s*[:.)-]|[-*•])(?:\*\*|__)?\s+",
                        re.IGNORECASE | re.MULTILINE)
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
EXPLAIN_PROMPT = _rx(r"\b(?:explain|tell me|show me|predict|in your own words)")
IMPERATIVE_VERBS = frozenset("""
try write compute calculate work pick choose list count run print draw fill check plug substitute add
subtract divide multiply find compare trace start take look change rewrite expand apply test read note mark
circle label sketch type copy set put use replace solve simplify factor estimate guess predict tell explain show
describe say name consider notice imagine jot make move open build continue repeat keep figure sum undo
evaluate graph plot convert combine identify underline highlight focus spot give walk ask follow
assume suppose send share do double redo recheck recalculate recount reread retry revisit
""".split())
NEXT_STEP = _rx(
    r"\b(?:your turn|(?:tell|show|send) me|(?:the |your )?next step|your next|have a go|give it a (?:try|go|"
    r"shot)|go ahead|try (?:it|this|that|to|writing|computing|working|again|one|doing)|now (?:you|try|can you|"
    r"what)|start (?:by|with)|"
    r"step (?:1|one)\b|let'?s (?:try|write|compute|start|work|look|trace|count|check|pick|take|figure|draw|list|"
    r"build|fill|do|walk|find|test|plug|add|divide|multiply|subtract|solve|begin))"
)
ANSWER_MARKER = _rx(
    r"\b(?:the (?:final |correct |right |real )?(?:answer|result|solution|reason) is|so the answer|here'?s the "
    r"(?:answer|solution|fix|fixed|corrected|full|complete)|the fix is|(?:so )?it (?:equals|comes out (?:to|as)))\b"
)
WEAK_ANSWER_MARKER = _rx(r"\b(?:(?:which|that|this) (?:gives|equals)(?: you)?|therefore|thus|hence|which is why|"
                         r"that'?s why|so you get)\b")
EQUALS_RESULT = re.compile(r"=\s*-?\(?\d")
DISMISSIVE = _rx(
    r"\b(?:obviously|clearly you|it'?s (?:really |very |so |pretty )?(?:easy|simple|basic|trivial|elementary)|"
    r"this is (?:really |very |so )?(?:easy|simple|basic|trivial)|as i (?:already )?(?:said|explained|told you)|"
    r"i (?:already|just) (?:told|explained|said)|you should (?:already )?(?:know|have known|remember)|everyone "
    r"knows|not that hard|pay attention|come on|seriously[,?!]|just (?:memori[sz]e|accept|do it|remember|follow "
    r"the rule)|because that'?s (?:the rule|how it is)|that'?s just how|doesn'?t matter why|you'?re overthinking|"
    r"not rocket science|we don'?t have time|read (?:it|the question) again|how (?:do|can|could) you not|"
    r"any (?:child|kid|beginner) (?:can|knows)|no excuses?|stop (?:asking|complaining|overthinking)|wrong[.!]|"
    r"that'?s (?:wrong|incorrect)[.!]|why would you|i don'?t know why you)(?!\w)"
)
_INSULT = r"(?:stupid|dumb|idiot(?:ic)?|moron(?:ic)?|lazy|pathetic|useless|hopeless|clueless|incompetent|slow)"
OFFENSIVE = _rx(  # insults and profanity, counted with the dismissive cues
    rf"\b(?:(?:you'?re|you are|you sound|you look|what an?|such an?|that'?s an?) (?:so |really |just )?{_INSULT}|"
    rf"{_INSULT} (?:question|mistake|answer|idea|thing to (?:ask|say|do))|(?:you|you'?re an?) (?:idiot|moron|"
    r"fool)|shut up|(?:damn|crap|wtf|shit|f\*?u?ck(?:ing)?|bloody))(?!\w)"
)
NEGATED_INSULT = _rx(rf"\b(?:no|not|never|isn'?t|wasn'?t|aren'?t)(?: an?)? (?:so |really )?{_INSULT}(?!\w)")
ENCOURAGING = _rx(
    r"\b(?:good|nice|great|well done|exactly|excellent|spot on|you'?re (?:right|close|on the right track|getting "
    r"(?:there|it))|that'?s (?:right|it|correct|a (?:good|fair|sharp|smart|real))|interesting|close[!,.]|you'?ve "
    r"(?:got|spotted|found|noticed|done)|it'?s okay to|mistakes are|common (?:mix-?up|mistake|confusion)|"
    r"fair (?:question|point)|thanks for|well spotted|good (?:catch|thinking|instinct)|you can do)"
)
TENTATIVE = _rx(r"\b(?:perhaps|maybe|might|i wonder|possibly|what if|it seems|could it be)\b")
OPEN_QUESTION = _rx(  # questions about the student's own view, not a fact to recall
    r"\b(?:what do you (?:already )?(?:think|believe|notice|make of|feel|imagine|expect|suppose|see)|what'?s "
    r"your (?:own )?(?:sense|intuition|guess|take|hunch|view|reading)|why (?:might|would|do you think)|how (?:might|"
    r"would you|do you see)|(?:which|what) would you|if you had to|how you see|what would it mean|what if|"
    r"(?:where|how) do you (?:think|feel|see|sense)|wonder|curious|notice|what comes to mind|what stands out|"
    r"how does that (?:sit|feel)|what (?:could|might) (?:that|it|this) (?:mean|tell)|(?:seems?|feels?) (?:like )?"
    r"(?:a trick|strange|odd|wrong|off|paradoxical|satisfying|right))"
)
INVITATION = _rx(r"\b(?:tell me (?:how|why|what|where)|in your own words|put (?:it|that) into words|describe "
                 r"(?:how|why|what))")
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
    r"that (?:experience|comment|label)|you asked|it took (?:courage|guts)|after (?:that|being told)|i can see "
    r"why|(?:it'?s|that'?s) understandable|glad you (?:asked|did|said)|(?:right|good) call|your question "
    r"(?:was|is) (?:a )?(?:good|fair|real|important|reasonable)|deserves? (?:a|an) (?:proper|real|honest|clear)|"
    r"i should have|(?:precise|sharp|specific|careful|thoughtful|honest|important) question|(?:right|good|"
    r"healthy) instinct|put your finger on)"
)
REFRAME = _rx(
    r"\b(?:(?:that'?s|it'?s|that is|it is) (?:simply )?(?:not true|not a fact|a myth|false)|isn'?t true|not "
    r"(?:a|an) \w+ person|anyone can|everyone can|is a skill|can be learned|learnable|not (?:about|a matter of) "
    r"(?:being|talent)|you'?re not (?:bad|stupid|slow|behind|hopeless)|not your fault|nothing wrong with "
    r"(?:you|asking)|no such thing as|(?:visual|any) learners? can|you can (?:learn|do|read|get)|nothing about "
    r"(?:that|this|it|your)|(?:wasn'?t|isn'?t|not) a (?:silly|stupid|dumb|basic|bad) question|(?:lots of|plenty "
    r"of|many) (?:careful|smart|capable|strong|good|clever) (?:people|students|learners))"
)
SPECIFIC_SUCCESS = _rx(
    r"\b(?:you (?:just |already )?(?:did|found|got|spotted|worked|figured|noticed|computed|read|drew|solved|"
    r"identified|caught|picked|wrote|checked|tested|tried|explained|kept|described|pinpointed|named)|"
    r"you'?ve (?:just |already )?(?:done|found|got|spotted|worked|figured|noticed|computed|solved|read|checked)|"
    r"(?:that'?s|is) (?:exactly )?(?:right|correct)|exactly( right)?[.!]|spot on|the way you (?:got|did|worked|"
    r"approached|reasoned))"
)
# How tutors, people and LLMs alike, tell a student an attempt went wrong: a hedge, a correction, a pointer back.
CORRECTION = _rx(
    r"\b(?:not quite|almost|close|mistakes?|errors?|misunderst\w*|mix(?:ed)?[- ]up|mixed|actually|however|but|instead|"
    r"rather than|re-?(?:check|visit|consider|evaluate|examine|think|read|calculate|count)|double[- ]check|"
    r"(?:a )?closer look|look again|check (?:your|that|this|again|it)|not (?:correct|right|the same)|incorrect|"
    r"wrong|careful|oops|forg[eo]t|missed|remember|be sure|make sure|are you sure|hmm)\b"
)
# Confirming or praising the attempt as it stands.
AFFIRM = _rx(
    r"\b(?:great (?:job|work|effort)|well done|good (?:job|work)|that'?s (?:right|correct|it)|"
    r"you'?re (?:right|correct)|correct[!.]|exactly|perfect|excellent|awesome|nice work|you got it|spot on)\b"
)
MOVE_ON = _rx(r"\b(?:mov(?:e|ing) on|next (?:problem|question|one|exercise)|(?:another|a different|a similar|a new) "
              r"(?:problem|question|exercise))\b")
# Pointers that carry a hint or an explanation: what to recall, what to look at, why.
HINT = _rx(
    r"\b(?:remember|recall|think (?:about|of)|notice|consider|hint|look at|what if|because|means|since|so that|"
    r"first|need to|have to|should|try|the key|keep in mind|each|per|total|instead of)\b"
)
ASKS_STUDENT = _rx(r"\b(?:can|could|would|will|do|did|how did|what did) you\b")
NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
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
    list_lines: int  # numbered or bulleted lines
    ordinals: int  # first / then / next / step 2
    metaphors: float
    topic_switches: int
    dismissive: int  # dismissive or offensive phrases; a rejected label ("you're not stupid") is neither
    encouraging: int  # outside stock phrases
    tentative: int
    open_questions: int
    acknowledge: int
    reframe: int
    specific_success: int
    stock: int
    concrete: int  # numbers, code tokens, symbols
    corrections: int  # "not quite", "but", "let's re-check": the attempt has a problem
    affirmations: int  # "that's right", "great job": the attempt is confirmed as it stands
    move_on: bool  # "let's move on to the next problem"
    hints: int  # "remember", "look at", "because": a pointer or an explanation
    asks_student: int  # "can you", "how did you": the student is asked to act


def sentences(text: str) -> list[str]:
    """Sentences, each line its own (list markers stripped, so "1." is no sentence)."""
    lines = (_LIST_LINE.sub("", line, count=1) for line in text.splitlines())
    return [s.strip() for line in lines for s in _SENT_SPLIT.split(line) if s.strip()]


def stem(word: str) -> str:
    """A crude suffix stripper, enough to match move / moves / moving / moved."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2 and not word.endswith("ss"):
            word = word[: -len(suffix)]
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def content_words(text: str) -> set[str]:
    """Stemmed lower-cased words minus stopwords."""
    return {stem(w) for w in (w.strip("'") for w in words(text))
            if w not in STOPWORDS and (len(w) > 1 or w.isdigit())}


def _is_imperative(sentence: str) -> bool:
    """A sentence (or one of its clauses) that starts with an action verb: "Try n = 3", "When done, tell me"."""
    if sentence.rstrip().endswith("?"):
        return False
    for clause in _CLAUSE.split(sentence):
        head = words(_LEAD.sub("", clause).lstrip("*_`\"' ")[:40])
        if head[:1] in (["please"], ["just"], ["only"]):
            head = head[1:]
        if head and (head[0] in IMPERATIVE_VERBS or head[0] == "let's"):
            return True
    return False


def extract(text: str) -> Cues:
    """The cues of one tutor message."""
    sents = sentences(text)
    questions = [s for s in sents if s.endswith("?")]
    imperative = [s for s in sents if not s.endswith("?") and _is_imperative(s)]
    declarative = [s for s in sents if not s.endswith("?") and s not in imperative]
    lines = [ln for ln in text.splitlines() if ln.strip()] or [""]
    return Cues(
        n_words=len(words(text)),
        n_sentences=len(sents),
        max_line_words=max(len(words(ln)) for ln in lines),
        questions=len(questions),
        ends_with_question=bool(sents) and sents[-1].endswith("?"),
        strong_checks=sum(1 for s in questions if STRONG_CHECK.search(s))
        + sum(1 for s in imperative if EXPLAIN_PROMPT.search(s)),
        yes_no_checks=sum(1 for s in questions if YES_NO_CHECK.search(s)),
        imperatives=len(imperative),
        next_steps=len(NEXT_STEP.findall(text)),
        declaratives=len(declarative),
        list_lines=len(_LIST_LINE.findall(text)),
        ordinals=len(ORDINAL.findall(text)),
        # "imagine" alone ("imagine the deepest call") counts half: it often sets up a concrete case.
        metaphors=len(METAPHOR.findall(text)) + 0.5 * len(WEAK_METAPHOR.findall(METAPHOR.sub(" ", text))),
        topic_switches=len(TOPIC_SWITCH.findall(text)),
        dismissive=len(DISMISSIVE.findall(text)) + len(OFFENSIVE.findall(NEGATED_INSULT.sub(" ", text))),
        encouraging=len(ENCOURAGING.findall(without_stock_phrases(text))),
        tentative=len(TENTATIVE.findall(text)),
        open_questions=sum(1 for s in questions if OPEN_QUESTION.search(s))
        + sum(1 for s in imperative if INVITATION.search(s)),
        acknowledge=len(ACKNOWLEDGE.findall(text)),
        reframe=len(REFRAME.findall(text)),
        specific_success=len(SPECIFIC_SUCCESS.findall(text)),
        stock=len(stock_phrases(text)),
        concrete=len(CONCRETE_TOKEN.findall(text)),
        corrections=len(CORRECTION.findall(text)),
        affirmations=len(AFFIRM.findall(without_stock_phrases(text))),
        move_on=bool(MOVE_ON.search(text)),
        hints=len(HINT.findall(text)),
        asks_student=len(ASKS_STUDENT.findall(text)),
    )


def overlap(text: str, reference: str | set[str], cap: int = 4) -> float:
    """Share of the reference's content words (up to `cap` of them) that the text reuses, in [0, 1]."""
    ref = reference if isinstance(reference, set) else content_words(reference)
    if not ref:
        return 0.0
    return min(1.0, len(content_words(text) & ref) / min(cap, len(ref)))


def numbers(text: str) -> set[str]:
    """The numbers a text states, normalised ("1,000" and "1000" are one)."""
    return {n.replace(",", "") for n in NUMBER.findall(text)}


_RESULT = re.compile(r"(?:=|\b(?:is|equals|makes|gives|get|gets|got|are|be|was|would be)\b)(?:\s+(?:actually|really|"
                     r"just|exactly|only|then|now|therefore|simply))?\s*\$?(-?\d+(?:[.,]\d+)?)", re.IGNORECASE)


def stated_results(text: str, known: set[str]) -> int:
    """Results the text states that the dialogue has not ("... = 27", "so it is 45"), outside questions."""
    decl = " ".join(s for s in sentences(text) if not s.endswith("?"))
    return len({n.replace(",", "") for n in _RESULT.findall(decl)} - known)


def answer_reveal(response: str, answer: str | None, student: str, given: str = "") -> tuple[float, float]:
    """How strongly the response states the final answer that the student has not produced yet.

    Returns (strength, evidence), both in [0, 1]. With a card's answer, strength is the share of the
    answer's distinctive words and numbers (those not in `given`: the question and the steps toward
    it) that the response states, questions counting half. When the student's own messages already
    hold most of them, confirming is no reveal. Without an answer (or nothing distinctive in it),
    strength rests on generic markers ("the answer is", "= 5").
    """
    sents = sentences(response)
    decl = " ".join(s for s in sents if not s.endswith("?"))
    markers = len(ANSWER_MARKER.findall(decl))
    weak = len(WEAK_ANSWER_MARKER.findall(decl)) + len(EQUALS_RESULT.findall(decl))
    marker_strength = min(1.0, 0.6 * markers + 0.2 * weak)
    key = _key_terms(answer) - _key_terms(given) if answer else set()
    if not key:
        return marker_strength, 0.3 + 0.5 * min(1.0, markers + 0.5 * weak)
    if student_has_answer(answer, student, given):
        return 0.0, 0.6  # the student has (nearly) said it: confirming is not revealing
    remaining = key - _key_terms(student)
    weight = {t: 2.0 if _is_symbolic(t) else 1.0 for t in remaining}
    said = _key_terms(decl)
    asked = _key_terms(" ".join(s for s in sents if s.endswith("?"))) - said
    # One pseudo-term in the denominator: with two or three distinctive terms, one chance match of a
    # common word is weak evidence.
    total = sum(weight.values())
    coverage = (sum(weight[t] for t in remaining & said) + 0.5 * sum(weight[t] for t in remaining & asked)) \
        / (total + 1)
    strength = clamp(1.25 * coverage - 0.1 + 0.5 * marker_strength * coverage)
    return strength, min(1.0, 0.3 + 0.1 * total) * (0.55 + 0.45 * abs(2 * strength - 1))


def student_has_answer(answer: str, student: str, given: str = "") -> bool:
    """Whether the student's messages already hold (nearly) all the answer's distinctive terms."""
    key = _key_terms(answer) - _key_terms(given)
    return bool(key) and len(key - _key_terms(student)) < 0.34 * len(key)


_SYMBOLIC = re.compile(r"[&*]?\w+(?:[/^.]\w+)*(?:\(\w*\))?")


def _key_terms(text: str) -> set[str]:
    """Content words plus symbolic terms (numbers, 5/6, x^2, &a, f(0)) of a text."""
    return content_words(text) | {t for t in _SYMBOLIC.findall(text.lower()) if _is_symbolic(t)}


def _is_symbolic(token: str) -> bool:
    return any(c.isdigit() or c in "*&/^(" for c in token)
