"""The cue reader's patterns for a student's background: a bad prior teacher, and being neurodivergent in general
(see `cue_table` for the weights' meaning)."""

from __future__ import annotations

from parallel_r1.profiles.cue_patterns import (
    BPT,
    CONTEMPT,
    LITERAL,
    ND,
    SAID,
    TEACHER,
    VAGUE,
)

# --- (trait, cue name, weight, pattern)
BACKGROUND_CUES: tuple[tuple[str, str, float, str], ...] = (
    # ------------------------------------------------------------------ bad_prior_teacher
    (BPT, "a teacher's contempt", 2.5,
     rf"\b{TEACHER}\b[^.!?]{{0,80}}\b(?:said|told|called|thought|made|treated|say|tell|call|wrote|write|says|tells|"
     rf"calls)\b[^.!?]{{0,50}}{CONTEMPT}"),
    (BPT, "a teacher mocked or gave up", 2.5,
     rf"\b{TEACHER}\b[^.!?]{{0,60}}\b(?:laugh\w*|yell\w*|shout\w*|scream\w*|mock\w*|sigh\w*|roll\w* (?:his|her|their) "
     rf"eyes|humiliat\w*|embarrass\w*|made fun|gave up on|hated me|picked on|ignored me|wrote me off|made me cry|"
     rf"made me feel|made me stand|kicked me out|sent me out|got (?:angry|mad|annoyed|frustrated)|cross\w* out|"
     rf"punish\w*|(?:always|would) (?:said|say|told|tell))"),
    (BPT, "a past teacher", 1.0, rf"\b(?:my|our|the) (?:old|last|previous|former|past) {TEACHER}\b|\b{TEACHER}\b "
                                 rf"(?:used to|would always)\b"),
    (BPT, "was laughed at", 2.0,
     r"\b(?:laughed at|made fun of|mocked|humiliated|yelled at|shouted at|screamed at|picked on) (?:me|us)\b|\bcalled "
     r"me "
     r"(?:stupid|dumb|lazy|slow|thick|an idiot|hopeless)\b|\b(?:everyone|the class|they all|whole class|people) "
     r"(?:laughed|giggled|stared)\b|\bin front of (?:the (?:whole )?class|everyone|everybody|the others)\b|\broll\w* "
     r"(?:his|her|their) eyes\b"),
    (BPT, "afraid to ask", 2.0,
     r"\b(?:scared|afraid|nervous|anxious|terrified|frightened|embarrassed|ashamed) (?:to|of|about) (?:even )?(?:ask\w"
     r"*|"
     r"being wrong|get(?:ting)? (?:it|this|things) wrong|speak\w*|answer\w*|look\w* stupid|sound\w* stupid)\b"
     r"|\b(?:don'?t|do not) want to (?:be|get it|sound|look) (?:wrong|stupid|dumb)\b"),
    (BPT, "do not get annoyed", 2.0,
     r"\b(?:please )?don'?t (?:laugh|yell|get mad|be mad|get angry|judge|shout|get annoyed|get upset|get frustrated)\b"
     r"|\b(?:are you|you'?re|is he|is she) (?:not )?(?:going to |gonna )?(?:mad|angry|annoyed|laugh|yell)\w*\b"
     r"|\bwithout you getting (?:mad|angry|annoyed)\b"),
    (BPT, "not a ... person", 2.0,
     r"\bnot (?:a|an) (?:\w+ )?(?:person|brain|type|kind of (?:person|student))\b|\bnot (?:smart|clever|bright) enough"
     r"\b"
     r"|\bnot cut out\b"),
    (BPT, "calls themself stupid", 1.5,
     r"\b(?:i'?m|i am|im|i feel|i must be|i'?m just|i was always) (?:so |such an? |really |just |too |probably |the )?"
     r"(?:stupid|dumb|an idiot|idiot|hopeless|useless|thick|slow|a failure|a lost cause|bad at (?:this|everything|"
     r"maths?|math|\w+)|(?:dumb|stupid|slow) one)\b|\b(?:worst|dumbest|slowest|stupidest) (?:student|person|one|pupil)"
     r"\b"
     r"|\bmy (?:brain|head) is (?:useless|broken|stupid|mush)\b|\bi know i'?m (?:being )?(?:annoying|a pain|slow|stupi"
     r"d|dumb)\b"),
    (BPT, "you'll think I'm stupid", 2.0,
     r"\b(?:you'?re|you are|you'?ll|you will) (?:going to |gonna )?think (?:that )?i'?m\b|\byou must (?:think|be)\b"
     r"|\byou (?:probably )?think i'?m\b"),
    (BPT, "dumb question", 1.25,
     r"\b(?:dumb|stupid|silly|idiotic|basic|obvious|noob|newbie|easy) question\b|\b(?:this|that|it)(?:'s| is) "
     r"(?:probably |prob )?(?:so |really |super )?(?:obvious|stupid|dumb|silly|basic)\b|\b(?:probably|prob) (?:wrong|"
     r"stupid|dumb)\b"),
    (BPT, "apologises for asking", 1.25,
     r"\b(?:sorry|apologi[sz]e)\w* (?:for|to|about|if|that)? ?(?:ask\w*|again|keep\w*|being (?:slow|stupid|dumb|"
     r"annoying|a pain|so)|the (?:dumb|stupid|silly|basic)|so many|wast\w*|annoy\w*|this is (?:a )?(?:dumb|stupid|"
     r"obvious|silly)|i'?m (?:so |being )?(?:slow|stupid|dumb|annoying)|i (?:ask|keep|repeat))\b"),
    (BPT, "apologises for bothering", 0.75,
     r"\b(?:sorry|apologi[sz]e)\w* (?:for|to|about)? ?(?:bother\w*|interrupt\w*|taking (?:up )?your)\b"
     r"|\b(?:don'?t|do not) want to (?:bother|annoy|waste)\b"),
    (BPT, "sorry", 0.75, r"\bsorry\b|\bapologi[sz]e\b|\bmy apologies\b|\bperd[oó]n\b"),
    (BPT, "sorry again and again", 1.0, r"\bsorry\b[^.!?]{0,40}[.!?, ]+[^.!?]{0,40}\bsorry\b|\bsorry,? sorry\b"),
    (BPT, "sorry for a slip", -0.75,
     r"\bsorry,? (?:i meant|i mean|typo|wrong (?:one|number|button|file|photo|picture)|autocorrect|my bad|that was a "
     r"typo|forgot to)\b|\bsorry (?:for the|about the) (?:late|delay|typo)|\bsorry one sec\b"),
    (BPT, "asks permission", 1.25,
     r"\bonly if (?:that'?s|it'?s) ok\b|\bis it (?:ok|alright|allowed) (?:if i|to ask)\b|\bcan i ask (?:something|"
     r"you something)? ?without\b"),
    (BPT, "wasting your time", 1.5,
     r"\b(?:wast\w*|taking up) your time\b|\b(?:am i|i'?m|i am) (?:annoying|bothering) you\b"),
    (BPT, "will never get it", 1.0,
     r"\b(?:i'?ll|i will|i'?m going to|i'?m never going to|i am never going to) (?:never|probably never|not) (?:get|"
     r"understand|pass|be able)\w*\b|\bnever (?:been|was) (?:good|smart|any good)\b|\beveryone else (?:gets|understand"
     r"s|"
     r"got)\b|\bnever understand anything\b|\bshould i even (?:bother|try)\b|\bwhy (?:do|am) i even (?:bother|try)\w*"
     r"\b"),
    (BPT, "always wrong", 1.0, r"\b(?:i'?m|it'?s) always wrong\b|\bit always is\b|\bi (?:always|constantly) (?:mess|sc"
                               r"rew|"
                               r"get (?:it|things|everything)) (?:up|wrong)\b"),
    (BPT, "withdraws", 1.0, r"\b(?:never ?mind|forget it|doesn'?t matter anyway)\b"),
    (BPT, "will just memorise it", 1.0, r"\bi'?ll just (?:memori[sz]e|learn it by heart|copy)\b"),
    (BPT, "I know I should know", 1.25, r"\bi (?:know|knew) i should (?:already )?know\b|\bshould (?:already )?know "
                                        r"(?:this|that)(?: by now)?\b"),
    (BPT, "was punished for asking", 2.0,
     r"\b(?:got|get|was|were) (?:in trouble|told off|punished|kicked out|sent out|detention)\b[^.!?]{0,40}\b(?:ask\w*|"
     r"question\w*|wrong|mistake\w*)\b"),
    (BPT, "now avoids it", 1.0, r"\b(?:so|now|since then) i (?:hate|dread|avoid|never|don'?t) (?:speaking|asking|answe"
                                r"ring|"
                                r"maths|math|reading|read)\b"),
    # ------------------------------------------------------------------ neurodivergent (in general)
    (ND, "discloses", 2.5,
     r"\b(?:autis\w*|asd|adhd|add/adhd|asperger\w*|aspie|dyslexi\w*|dyspraxi\w*|dyscalcul\w*|dysgraph\w*|neurodiver\w*|"
     r"audhd|on the spectrum|sensory processing|auditory processing|processing disorder|tourette\w*|neurospicy|"
     r"(?:i have|i've got|diagnosed with) (?:add|ocd))\b"),
    (ND, "exact definition", 1.5,
     r"\bexact(?:ly)? (?:definition|wording|meaning|words?|term|rules?|criteria|categor\w*|boundar\w*)\b|\bdefin\w* "
     r"[^.!?]{0,30}\b(?:exactly|precisely|formally|properly)\b|\bword for word\b"),
    (ND, "precise", 0.75, r"\bprecise(?:ly)?\b|\bexact\b"),
    (ND, "be explicit", 1.5,
     r"\b(?:need|want|prefer) (?:things|it|everything|instructions|them) (?:to be )?(?:explicit|exact|precise|literal|"
     r"spelled out)\b|\bneed to know exactly\b|\bbe (?:more )?(?:precise|exact|specific|explicit)\b"),
    (ND, "what do you mean by", 1.0,
     r"\bwhat (?:exactly )?(?:do|did) you mean (?:by|with|when)\b|\b(?:how (?:long|much|many|often|big|soon)|what) do "
     r"you mean\b|\bdo you mean\b"),
    (ND, "a vague word in quotes", 1.25,
     rf"['\"]{VAGUE}\b[^'\"]{{0,20}}['\"]|\b(?:what|how) (?:does|do|is|much is|long is|many is) (?:a |an )?"
     rf"['\"]?{VAGUE}['\"]? (?:mean|exactly)\b|\bhow (?:roughly|approximately)\b|\bwhat counts as\b"),
    (ND, "an everyday word is unclear", 1.5,
     r"\b(?:don'?t|do not) (?:know|understand|get) what ['\"][\w ]+['\"] means\b|\b(?:meant|taken|mean(?:s)?|meaning) "
     r"literally\b|\bthought (?:it|you) (?:was|were|meant) (?:about )?(?:a )?(?:real|literal)\b"),
    (ND, "ambiguous", 1.25, r"\b(?:ambiguous|vague|inconsistent|contradict\w*|doesn'?t add up|imprecise)\b"),
    (ND, "you said before", 1.25,
     r"\b(?:you said|earlier you said|before you said|you just said)\b[^.!?]{0,60}\b(?:but|now|and now|then)\b"),
    (ND, "which is it", 0.75, r"\bwhich (?:one )?is (?:it|correct|right)\?|\b(?:is it|are they) [\w ]{1,25} or not\b"
                              r"|\byes or no\b"),
    (ND, "when you say", 1.25, rf"\b{SAID}\b[^.!?]{{0,20}}['\"]"),
    (ND, "literal", 0.5, LITERAL),
    (ND, "sensory overload", 2.0,
     r"\b(?:sensory|overstimulat\w*|meltdowns?|(?:i|brain|i just) shut(?:s)? down|stim(?:ming|my)|neurotypical|too lou"
     r"d|"
     r"too bright|too many colou?rs)\b"),
    (ND, "overloaded", 1.0, r"\boverload\w*\b"),
    (ND, "needs time to process", 1.5,
     r"\b(?:need|give me|take|needs) (?:some |a |more |extra )?(?:time|minute|moment|while|second|sec) to (?:process|"
     r"think|work it out|take it in)\b|\bprocess(?:ing)? (?:things|speech|spoken|verbal|what people say)\b|\bprocess "
     r"(?:spoken|verbal)\b"),
    (ND, "same wording", 1.5, r"\b(?:same wording|same words|don'?t rephrase|instead of rephrasing|stop rephrasing|not"
                              r" a "
                              r"paraphrase)\b"),
    (ND, "an idiom or a joke", 1.25,
     r"\b(?:is that|are you being|was that|is this) (?:a joke|sarcas\w*|serious|an idiom|a figure of speech|an "
     r"expression)\b|\b(?:idiom|figure of speech)\b|\bmiss when people (?:are )?(?:joking|being sarcastic)\b"),
    (ND, "how much is 'a bit'", 1.25,
     r"\bhow (?:much|many|long) is (?:a bit|a few|a while|a little|some|soon|roughly|several)\b"),
    (ND, "my brain works differently", 1.25,
     r"\bmy (?:brain|mind|head) (?:works|doesn'?t work|is wired|just doesn'?t|does)\b|\b(?:brain|head) (?:is|works) "
     r"(?:different|weird)\w*\b"),
    (ND, "letters move", 2.0,
     r"\b(?:letters|words|numbers|text|symbols)\b[^.!?]{0,30}\b(?:move|moving|swim|jumble|swap|flip|blur|jump)\w*\b"
     r"|\b(?:b and d|p and q|6 and 9)\b"),
    (ND, "wants it written", 0.5,
     r"\b(?:written down|in writing|bullet points?|visual layout|a diagram|colou?r[- ]?coded|reread|re-read)\b"),
    (ND, "rules and exceptions", 0.75,
     r"\b(?:rule|rules)\b[^.!?]{0,40}\b(?:exceptions?|always|never|inconsistent|no sense)\b"),
)
