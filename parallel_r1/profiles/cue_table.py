"""The cue reader's weighted patterns, per trait, matched on normalised student text (see `cues.normalize`).

A weight near 2.5 is a cue that sets its trait alone; near 1 it needs another; a negative weight is a hard
negative (asking FOR an analogy, a "sorry" that corrects a typo). Patterns describe how students write in general
(refusals, apologies, questions about order, wanting to stay on one point, demands for exact wording), never one
dataset's sentences.
"""

from __future__ import annotations

from parallel_r1.profiles.cue_patterns import (
    EF,
    FAILS,
    FRAMING,
    HF,
    LITERAL,
    PICTURE,
    REFUSE,
    RM,
    SAID,
    VEHICLE,
)
from parallel_r1.profiles.cue_table_background import BACKGROUND_CUES

# --- (trait, cue name, weight, pattern); the traits of the background (bad prior teacher, neurodivergent) in
# `cue_table_background`
TABLE: tuple[tuple[str, str, float, str], ...] = (
    # ------------------------------------------------------------------ rejects_metaphor
    (RM, "refuses a comparison", 2.5, rf"\b{REFUSE}\b[^.!?]{{0,40}}{PICTURE}"),
    (RM, "the picture does not help", 2.5,
     rf"\b(?:analog\w*|metaph\w*|comparisons?|pictures?|images?|imagery|stor(?:y|ies)|(?:real[- ]?life|everyday) "
     rf"examples?|examples? (?:with|about|using|from) [\w ]{{1,20}}?)\b[^.!?]{{0,30}}?\b{FAILS}"),
    (RM, "a named picture does not help", 2.5,
     rf"\b(?:the|that|this|your|these|those) (?!(?:same|whole|other|next|first|last|only|one) )(?:[\w'\"-]+ ){{1,3}}"
     rf"(?:thing|stuff|example|analogy|metaphor|comparison|"
     rf"picture|story|version|business|bit)\b[^.!?]{{0,30}}?\b{FAILS}"),
    (RM, "a picture in quotes", 2.0,
     r"['\"][\w\s-]{2,30}['\"] (?:example|thing|comparison|analogy|metaphor|picture|version|story|stuff|framing)"),
    (RM, "stop with the picture", 2.0, r"\b(?:stop|quit|enough|done) (?:it )?(?:with|w) (?:the|all the|your|these|thos"
                                       r"e)\b"),
    (RM, "refuses a familiar picture", 1.5,
     rf"\b(?:no more|stop|quit|enough|tired of|sick of|can we not|please not|skip|without the|(?:don'?t|do not) "
     rf"(?:use|do|bring|start))\b[^.!?]{{0,25}}\b{VEHICLE}\b|\bno (?:more )?(?:\w+ )?{VEHICLE}\b(?! (?:in|at|on|is|are"
     rf"))"),
    (RM, "can we not do the ... thing", 2.5,
     r"\b(?:can|could) (?:we|you) (?:please )?(?:not|stop|skip|drop|quit) (?:\w+ ){0,3}(?:the|your|that|this) "
     r"(?:[\w'\"-]+ ){1,4}(?:thing|stuff|business|bit|example|story|analogy|metaphor|comparison|picture)\b"
     r"|\bwithout the (?:[\w'\"-]+ ){1,3}(?:thing|stuff|example|story|analogy|metaphor|comparison|picture)\b"),
    (RM, "leave the picture out", 2.0,
     r"\bleave (?:the|your|that|this) [\w'-]+(?: [\w'-]+)? out\b|\b(?:everything|it'?s always) (?:is )?(?:a |an )?"
     r"(?:metaph|analog|comparison)"),
    (RM, "explain it without ...", 1.5,
     r"\bexplain\w* (?:[\w-]+ ){0,2}without (?:the|a|any|your|all the|using (?:an?|the))\b"),
    (RM, "refuses a framing", 2.0,
     rf"\b(?:{REFUSE}|say|says|saying|said|hate)\b[^.!?]{{0,15}}['\"]?{FRAMING}|{FRAMING}[^.!?]{{0,30}}\b(?:zone "
     rf"out|switch off|tune out|lose me|lost|confus\w*)"),
    (RM, "do not compare", 2.5, r"\b(?:don'?t|do not|without|stop|no|never) compar\w*|\bwhen(?:ever)? you compare\b"),
    (RM, "does not think in pictures", 2.0,
     r"\b(?:don'?t|do not|can'?t|cannot) (?:think|learn) (?:in|with|through) (?:pictures|images|metaphors|analogies|"
     r"stories|comparisons)\b|\b(?:don'?t|do not) (?:want|need) to (?:picture|imagine|visuali[sz]e)\b"),
    (RM, "picturing it costs the physics", 2.0,
     r"\b(?:try\w* to|have to|keep) (?:picture|imagine|visuali[sz]e)\w*[^.!?]{0,40}\b(?:forget|lose|confus|lost)"),
    (RM, "'X is not a Y though'", 2.0,
     r"\b(?:isn'?t|is not|aren'?t|are not|ain'?t|weren'?t|is nothing like|are nothing like|doesn'?t work like|"
     r"don'?t work like|doesn'?t behave like)(?: really| actually)? (?:an? |the |like |any )?"
     r"(?!(?:right|true|correct|wrong|it|that|what|how|same|working|possible|clear|enough|always|there|here|so|very|"
     r"too|really|actually|quite|bad|good|sure|the case)\b)[a-z'-]+(?: [a-z'-]+)?,? (?:though|tho|at all)\b"),
    (RM, "the thing is not the picture", 1.5, rf"\b(?:isn'?t|is not|aren'?t|are not) (?:an? )?{VEHICLE}\b"),
    (RM, "things do not want", 1.5,
     r"\b(?:don'?t|doesn'?t|can'?t|do not|does not) (?:really )?(?:want|know|think|feel|like|try|decide|reproduce|"
     r"care) (?:anything|things|stuff)\b|\bwhy would (?:a |an |the )?[\w-]+ be like\b"),
    (RM, "the teacher's word in quotes", 1.0, rf"\b{SAID}\b[^.!?]{{0,30}}['\"]"),
    (RM, "calls a picture silly", 1.0,
     r"\b(?:is|are) (?:like )?['\"](?!(?:always|never|sometimes|true|false|right|wrong|correct|about|around|roughly)\b)"
     r"(?:the |a |an )?[\w ]{2,25}['\"]"),
    (RM, "why the picture", 2.0,
     r"\bwhy (?:are you|do you keep|you keep) (?:telling|talking|going on|bringing up)\w* (?:me )?(?:about )?"),
    (RM, "can't be literally true", 1.5, r"\b(?:can'?t|cannot|isn'?t) (?:be )?(?:literally|actually|really) true\b"),
    (RM, "wants the literal thing", 1.0,
     r"\b(?:actual|real|literal|technical|formal|proper|precise|exact) (?:mechanism|definition|steps|process|rule|"
     r"explanation|answer|maths|math|code|formula|version|terms|thing|way it works|physics|chemistry)\b"
     r"|\bthe (?:thing|concept|idea) itself\b"),
    (RM, "what actually happens", 1.0,
     r"\bwhat (?:actually|really|literally|physically|exactly) (?:happens|is happening|goes on|does it do|is going on)"
     r"\b"),
    (RM, "literal", 1.0, LITERAL),
    (RM, "plain terms", 0.75,
     r"\b(?:in|with|using) (?:plain|technical|precise|literal|exact|real|normal|proper) (?:terms|words|language|"
     r"english|numbers|maths|math|symbols)\b|\bin symbols\b"),
    (RM, "not a child", 2.0, r"\b(?:i'?m|i am) not (?:5|five|a (?:kid|child|baby))\b|\blike (?:an|to an) (?:adult|engi"
                             r"neer)\b"),
    (RM, "does not map", 1.0, r"\b(?:doesn'?t|does not|don'?t|do not) (?:map|translate|correspond|carry over)\b"),
    (RM, "asks for a picture", -2.5,
     r"\b(?:can|could|would|will) you (?:please )?(?:give|use|show|offer|think of|try|come up with|do|make|tell) "
     r"(?:me |us )?(?:an?|some|another|a good|a simple|a better|an easy|any) (?:\w+ )?(?:analog\w*|metaph\w*|"
     r"comparison|real[- ]?(?:world|life) example|everyday example|picture|way to (?:picture|visuali[sz]e|think "
     r"about)|visual)|\b(?:use|using) (?:an?|some) (?:\w+ )?(?:analogy|metaphor|example|comparison)\b"
     r"(?![^.!?]{0,30}\b(?:hate|confus|don'?t))"),
    (RM, "is there a picture", -2.0,
     r"\b(?:is there|do you have|got|any|(?<!n't )(?<!not )give me|(?<!n't )need) (?:an? |some )?(?:good |simple |easy"
     r" |real[- ]?life )?"
     r"(?:analog\w*|metaph\w*|comparison|real[- ]?(?:life|world) (?:example|version))"),
    (RM, "wants it told with a picture", -2.5,
     r"\b(?:explain|describe|show|teach|say)\w* (?:it|this|that|them|[\w-]+)? ?(?:to me )?(?:with|using|through|via|"
     r"by) (?:an?|some|a simple|a good|a nice) (?:analog\w*|metaph\w*|comparison|picture|example|story|real[- ]?"
     r"(?:life|world) example)|\b(?:an?|some) (?:analog\w*|metaph\w*|comparison|picture|real[- ]?life example) "
     r"(?:would|might|could|will) (?:help|be (?:good|nice|useful|great))|\bi (?:learn|understand|remember) (?:best|"
     r"better|more) (?:with|through|from|when you use) (?:analog|metaph|comparison|example|stor|picture)"),
    (RM, "explain like I'm five", -1.5, r"\b(?:explain|say) (?:it |this |that )?like (?:i'?m|i am) (?:5|five|a kid)\b"),
    (RM, "the picture helped", -1.5,
     r"\b(?:analog\w*|metaph\w*|comparison|picture|example)\b[^.!?]{0,30}(?<!n't )(?<!not )(?<!never )\b(?:helps|"
     r"helped|made sense|clicked|is great|was great|love)\b"),
    (RM, "about metaphors as a topic", -1.0,
     r"\b(?:what is|what'?s|find|identify|difference between) (?:a |an |the )?(?:metaph|simile|analog)\w*"
     r"|\b(?:poem|novel|essay|text|story) [^.!?]{0,30}(?:metaph|simile)"),
    # ------------------------------------------------------------------ executive_function_gap
    (EF, "loses track", 2.5,
     r"\b(?:lose|lost|losing|loose|loses) (?:the |my )?(?:track|place|thread|order|plot|steps?|where (?:i|we) "
     r"(?:am|are|was|were))\b"),
    (EF, "forgets the steps", 2.0,
     r"\b(?:forget|forgot|forgetting|forgotten|forgets|drop|drops) (?:what (?:i|we|step)|which (?:step|one|part)|"
     r"where (?:i|we)|the (?:first|next|previous|earlier|last|order|steps?|middle))\b|\bforgot (?:it|them|that) alread"
     r"y\b"),
    (EF, "checklist", 2.5,
     r"\b(?:check ?list|to-?do list|numbered (?:list|steps)|list (?:of )?(?:the |all the )?(?:steps|things|stuff)|"
     r"steps? (?:written|as a list)|write (?:out|down|up) (?:the|all the|each) steps|number (?:the|each) steps?)\b"),
    (EF, "where do I start", 2.0,
     r"\b(?:where|how) (?:do|should|would|can|must|could|am) (?:i|we) (?:even|supposed to|meant to) (?:start|begin)\b"
     r"|\bwhere (?:do|should|would|can|must|could) (?:i |we )?(?:actually )?(?:start|begin)\b(?! (?:if|learning|to "
     r"learn|with learning))|\b(?:where|what|how) to (?:start|begin)(?: with)?\b|\bfrom where (?:i |to )?(?:must |"
     r"should |can )?(?:start|begin)\b|\bwhere (?:i|we) (?:should |must |can )?(?:start|begin)\b"),
    (EF, "how do I start", 1.25, r"\bhow (?:do|should|would|can) (?:i|we) (?:start|begin|get started)\b"),
    (EF, "what do I do first", 2.0,
     r"\bwhat (?:do|should|must|shall|would) (?:i|we) (?:do|write|look at|solve|work out|fill in) (?:first|next|"
     r"now|after that|after|then)\b|\bwhat (?:i|we) (?:must|should|have to) do (?:first|next)\b"
     r"|\bwhat (?:to do|do i do) (?:first|next)\b|\b(?:supposed|meant|need|have) to (?:do|write|start|put|solve) "
     r"(?:first|next)\b"),
    (EF, "which one first", 2.0,
     r"\bwhich (?:one |bug |part |step |thing |bit |of them )?(?:do|should|must) (?:i|we) (?:\w+ ){0,2}first\b"
     r"|\bwhich (?:one |step |thing |part )?(?:to do|to start|to fix|to look at) (?:first|next)\b"
     r"|\b(?:don'?t|do not) know (?:which|what|where) (?:one |step |thing |part |bit )?to (?:do|start|begin|look|"
     r"pick|tackle|work on|fix)"
     r"(?: at)?(?: first)?\b|\b(?:don'?t|do not) know (?:what|which) the first (?:step|move|thing) is\b"),
    (EF, "which step comes first", 1.5,
     r"\b(?:which|what) (?:step|one|part|thing|bit) (?:is |comes |goes |do i do |should i do )?(?:first|next|before|"
     r"after)\b|\bwhat (?:comes|goes) (?:next|first|after|before)\b|\bwhich (?:one )?(?:comes|goes|is) first\b"
     r"|^(?:and |ok |ok,? )?then what\b|\band then\?$|\bthen\.{2,} ?(?:nothing|blank|stuck)"),
    (EF, "asks the order", 1.75,
     r"\b(?:in )?(?:what|which|the right|the correct|wich) order\b(?! of operations)|\b(?:wrong|right|correct) "
     r"(?:order|sequence)\b|\bput (?:it|them|this|these) in order\b"),
    (EF, "what order do I", 2.25, r"\bwhat order (?:do|should|must|would) (?:i|we)\b"),
    (EF, "cannot order them", 2.0,
     r"\b(?:can'?t|cannot|couldn'?t) (?:put|get|keep|string) (?:them|it|things|the \w+)(?: together)? in (?:the right "
     r"|the |any )?(?:order|sequence)\b"),
    (EF, "first step", 1.0, r"\b(?:what'?s|what is|whats) (?:the )?(?:first|next) (?:step|thing|move)\b|\bwhat'?s step"
                            r" (?:one|1)\b"
                            r"|\bstep (?:one|1)\?|\b(?:the )?(?:next|first) (?:thing|step|move) (?:to do|i (?:should|n"
                            r"eed "
                            r"to|have to) do)\b"),
    (EF, "cannot find the first step", 2.0,
     r"\b(?:can'?t|cannot|couldn'?t) (?:find|figure out|see|work out|get) (?:the|what the) first (?:step|move|thing)\b"
     r"|\b(?:stuck|lost) at the (?:very )?(?:beginning|start)\b"),
    (EF, "step by step", 0.75, r"\bstep[- ]by[- ]step\b|\bone (?:step|thing|bit|part) at a time\b"),
    (EF, "overwhelmed", 2.0,
     r"\b(?:overwhelm\w*|too much (?:at once|info\w*|text|to (?:take in|read|keep|remember)|going on)|walls? of text|"
     r"too many (?:steps|things|parts|instructions)|one big (?:paragraph|block)|big block of text|huge paragraph)\b"),
    (EF, "that was a lot", 1.25,
     r"\b(?:that'?s|that was|it'?s|this is) (?:a lot|too much|so much|way too much|loads)\b|\btl;? ?dr\b|\b(?:shorter|"
     r"short) version\b|\byou (?:wrote|said|sent) (?:a lot|so much|loads|too much)\b"),
    (EF, "freezes", 1.5,
     r"\b(?:i|brain|mind|head) (?:just )?(?:freeze|froze|freezes|go blank|went blank|goes blank|blank|stall)\b|\b(?:br"
     r"ain|mind|"
     r"head) (?:went|goes|is|just went) (?:blank|empty)\b|\b(?:frozen|paralys\w*|paralyz\w*)\b|\bsit(?:ting)? there "
     r"(?:staring|looking)\b|\bstar(?:e|ing) at (?:it|the (?:page|screen|question))\b"),
    (EF, "cannot start", 1.5,
     r"\b(?:can'?t|cannot|couldn'?t|never|won'?t) (?:seem to )?(?:get (?:myself )?)?(?:start\w*|begin|get going|"
     r"get started)\b(?! (?:with|a|the|learning))|\bprocrastinat\w*|\bkeep putting (?:it|this) off\b|\bhaven'?t "
     r"(?:even )?(?:started|begun)\b|\bhelp me (?:get going|get started|start)\b"),
    (EF, "cannot hold it in mind", 2.0,
     r"\b(?:can'?t|cannot|couldn'?t) (?:hold|keep|juggle|remember) (?:all )?(?:of )?(?:that|this|it|them|everything|"
     r"the steps)(?: in my (?:head|mind)| at once)\b"),
    (EF, "cannot decide what to do", 2.0,
     r"\b(?:can'?t|cannot|couldn'?t) (?:decide|choose|figure out|work out|pick) (?:what|which|where) (?:to do|to start|"
     r"to begin|one|first)\b|\bend up (?:doing )?(?:nothing|none|scrolling)\b"),
    (EF, "jumps between tasks", 1.5,
     r"\b(?:keep|kept) (?:jumping|switching|bouncing|flipping) (?:between|around)\b|\bfinish(?:ing)? none\b|\b(?:keep|"
     r"kept) starting\b"),
    (EF, "skips or mixes steps", 1.75,
     r"\b(?:skip|skipped|skipping|miss|missed|missing|mix up|mixed up|mixing up|muddle\w*|jumble\w*|mess up|messed up)"
     r" (?:a |the |one of the |some )?(?:steps?|order|bits)\b"),
    (EF, "where was I", 2.0,
     r"\bwhere (?:was|am|were) (?:i|we)\b|\bwhat was i (?:doing|supposed)\b|\bremind me (?:what|where|which)\b"
     r"|\bwhat was the (?:second|next|other|first|third|last) (?:thing|step|part|bit)\b|\bwhich step (?:we'?re|we are|"
     r"i'?m|i am) on\b|\b(?:which|what) (?:part|step|bit|one) (?:was|am|do|should) i (?:supposed|meant|need) to do\b"),
    (EF, "break it down", 1.0,
     r"\bbreak (?:it|this|that|them) (?:down|up|into)\b|\b(?:smaller|small) (?:steps|chunks|pieces|bits)\b|\bsplit "
     r"(?:it|this) (?:up|into)\b"),
    (EF, "gets distracted", 1.25, r"\b(?:keep|kept) (?:getting )?distracted\b|\bmy (?:mind|brain) wanders\b|\bzoned? o"
                                  r"ut\b"),
    (EF, "lost", 1.25, r"(?:^|[.!?,] ?|ok |wait |\.\.\. ?)(?:i'?m |im |i got |got )?(?:so |totally |completely )?lost"
                       r"\b"),
    (EF, "lost somewhere", 2.0, r"\b(?:got|get|getting|am|i'?m) lost (?:around|at|after|in|half|somewhere|when|by|agai"
                                r"n)\b"
                                r"|\b(?:lost|lose it) in the middle\b|\bhalf ?way (?:through|down)\b"),
    (EF, "won't start at all", 1.5, r"\bwon'?t (?:start|get started|do it) at all\b|\bmake (?:me )?a plan\b"),
    # ------------------------------------------------------------------ hyperfocus_trait
    (HF, "does not want to move on", 2.5,
     r"\b(?:don'?t|do not|not|no|never|didn'?t) (?:really )?(?:want|wanna|ready|like) (?:to )?(?:move on|switch "
     r"(?:topics?|subjects?|yet|now)|change (?:the )?(?:topic|subject)|leave (?:this|it|that|the topic)(?: yet)?|stop "
     r"(?:yet|now|here|talking about)|go on (?:yet|to))\b"
     r"|\b(?:don'?t|do not|let'?s not|please don'?t|no,? don'?t) (?:switch(?: (?:yet|topics?|subjects?|now|to))?$|"
     r"switch (?:yet|topics?|subjects?|now|to)\b|move on|change (?:the )?(?:topic|subject)|go on|leave (?:this|it))"
     r"|\b(?:can|could) we (?:please )?not (?:change|switch|move on|leave)\b"
     r"|\b(?:let'?s not|not yet,?|no,? not yet) (?:go|move)(?: on)? to the next\b"),
    (HF, "why are we moving on", 2.5,
     r"\b(?:why|wait,?|but) (?:are |must |do |did |have )?we (?:already )?(?:have to |need to )?(?:moving on|move on|"
     r"moved on|changing (?:the )?(?:topic|subject)|switching (?:the )?(?:topic|subject|to)|leaving (?:this|it|that)|"
     r"skipping (?:this|it|that|ahead)|going on to|switching to|move to the next)\b|\bwhy (?:move|go|switch) on\b"
     r"|\b(?:we'?re|we are) (?:moving on|done|finished|switching)(?: already)?\?|^already\?"),
    (HF, "stay on the topic", 2.0,
     r"\b(?:stay|stick|remain|linger|dwell)(?:ing)? (?:more )?(?:on|with|in) (?!me\b|us\b|you\b)(?:[\w'-]+ ){1,4}"
     r"(?:a bit |a little |some )?(?:longer|more)\b|\b(?:stay|stick|remain)(?:ing)? (?:more )?(?:on|with|in) "
     r"(?:this|that|it|one|the topic|this topic|the subject|this point|this one)\b|\b(?:can|could) we (?:please )?"
     r"(?:stay|stick) (?:on|with) (?!me\b|us\b)"),
    (HF, "keep going on it", 1.5, r"\bkeep going (?:on|with)\b|\b(?:can|could) we (?:just )?do more\b"),
    (HF, "not done with it", 1.75, r"\bnot (?:done|finished|through)(?: yet)? with\b|\bnot (?:done|finished) (?:yet|he"
                                   r"re)\b"),
    (HF, "the rest can wait", 2.0,
     r"\b(?:the|my) (?:other|rest|homework|exam|worksheet|test|next|assignment|quiz)(?: [\w ]{1,25}?)? (?:stuff |thing"
     r"s? |"
     r"topics? )?(?:can wait|doesn'?t matter|is boring|feels? (?:pointless|boring))\b|\b(?:forget|skip|ignore|screw) "
     r"(?:about )?(?:the )?(?:homework|worksheet|exam|test|rest|other|assignment|quiz|syllabus|chapter|unit)\b"
     r"|\b(?:don'?t|do not) care about (?:the )?(?:rest|other|homework|exam|test|syllabus|next)\b"
     r"|\b(?:don'?t|do not) want to do the (?:worksheet|homework|quiz|exercises?|next|rest)\b"
     r"|\bnever get to the rest\b"),
    (HF, "a whole session on it", 2.0,
     r"\b(?:spend|spent) the (?:whole|entire|rest of the) (?:hour|lesson|day|session|class|time)\b|\bfor the rest of "
     r"(?:the )?(?:today|day|lesson|session|hour|class)\b|\b(?:could|can) (?:honestly )?(?:talk|read|think|learn) "
     r"about (?:[\w-]+ ){0,4}(?:all day|forever|for hours|all night)\b"),
    (HF, "go deeper", 1.25,
     r"\b(?:go|dig|dive|get|going|look) (?:even )?(?:deeper|further|into the (?:details|weeds))\b|\brabbit ?hole\b"
     r"|\bdeep dive\b|\bget to the bottom of\b|\bscratch(?:ed)? the surface\b"),
    (HF, "hours on one thing", 1.5,
     r"\b(?:hours|all (?:night|day|weekend|evening|morning)|since (?:this morning|last night|yesterday|last week)|for "
     r"days|whole (?:night|day|weekend))\b[^.!?]{0,50}\b(?:reading|looking|thinking|watching|trying|on (?:this|it|"
     r"that)|about (?:this|it))\b|\b(?:thinking|reading|obsessing|wondering|reading up) (?:about|on) [\w ,'-]{1,40}"
     r"(?:all (?:night|day|week|weekend)|for (?:hours|days|weeks))\b|\b(?:for|spent) (?:\d+|several|many|a few|two|"
     r"three|four|five) hours\b|\b\d+ (?:videos|articles|hours|pages|books)\b"),
    (HF, "cannot stop thinking", 1.75,
     r"\b(?:can'?t|couldn'?t|cannot) stop (?:thinking|reading|looking|watching|wondering)\b|\bobsess\w*|\bhyper ?fixat"
     r"\w*"
     r"|\bspecial interest\b"),
    (HF, "hooked", 1.25, r"\b(?:got|get|getting) (?:really |so )?(?:into|hooked)\b|\b(?:just|only just|finally) (?:get"
                         r"ting|"
                         r"got) into (?:it|this)\b|\bbugging me\b"),
    (HF, "why exactly", 1.0, r"\bwhy (?:exactly|precisely)\b|\bbut why\b[^.!?]{0,30}\bwhy\b"),
    (HF, "what is underneath", 0.75,
     r"\bwhat'?s (?:really |actually )?(?:going on )?(?:underneath|under the hood|behind (?:it|that|this))\b|\bwhere "
     r"does (?:it|that|this) (?:really )?come from\b"),
    (HF, "fascinated", 0.75, r"\bfascinat\w*|\b(?:so|really|super|incredibly) (?:interesting|cool)\b"),
    (HF, "keeps coming back", 1.5, r"\b(?:keep|kept|always) (?:coming|going) back\b|\b(?:keep|kept) thinking about\b"),
    (HF, "everything about it", 1.0,
     r"\b(?:want|need) to (?:understand|know|learn) (?:everything|all of it|every (?:detail|bit|part|use|case)|(?:it|"
     r"them) (?:all|completely|fully))\b|\bone more (?:thing|question) (?:about|on)\b|\b(?:talk|hear|learn|go|do) more "
     r"(?:about|on)\b|\b(?:every|each) (?:single |possible )?(?:exception|case|detail|way|use)\b"),
    (HF, "more questions", 1.0, r"\b(?:still|more|had|have) (?:\w+ ){0,3}questions (?:about|on|than)\b"),
    (HF, "only wants this", 1.25,
     r"\b(?:only|just) (?:want|care|like) (?:to )?(?:do|talk about|learn|about)\b|\bthe rest of (?:the |this )?[\w ]{1"
     r",20}"
     r"(?:is|feels|seems) (?:boring|pointless)\b|\bthis bit (?:about [\w ]+ )?is what i care about\b"),
    (HF, "go back to it", 0.75, r"\b(?:go|get|come) back to (?:the|that|this)\b|\bback to the [\w ]{1,25} thing\b"),
    *BACKGROUND_CUES,
)
