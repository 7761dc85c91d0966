"""Regex fragments the cue table shares: pictures and comparisons, the familiar "vehicles" of analogies, refusals,
ways a picture fails, teachers and their contempt, vague everyday words, literal-mindedness."""

from __future__ import annotations

# the traits, as the cue tables name them
RM = "rejects_metaphor"
EF = "executive_function_gap"
HF = "hyperfocus_trait"
BPT = "bad_prior_teacher"
ND = "neurodivergent"

PICTURE = (r"(?:an[ae]?l[oa]g(?:y|ies|ie|ys)\b|analog\w*|metaph?ou?r\w*|metafor\w*|comparisons?|comparing|similes?|"
           r"imagery|pictures?\b|images?\b|visuali[sz]ations?|stor(?:y|ies)\b|fairy[- ]?tales?|framing|"
           r"(?:real[- ]?(?:life|world)|everyday) (?:examples?|stuff|things)|examples? (?:like (?:that|this|those)|"
           r"from (?:real|everyday) life|with (?:food|money|sports?|animals|cars))|relat\w* (?:it )?to (?:something|"
           r"anything|real life|everyday))")
VEHICLE = (r"(?:pizzas?|cakes?|pies?|water|pipes?|hoses?|trains?|cars?|boxe?s?|buckets?|balls?|bank|money|sandwich\w*|"
           r"lego|recipes?|houses?|mailbox\w*|post ?office|postman|traffic|highways?|motorways?|rivers?|city|"
           r"factory|kitchen|family|cookies?|apples?|oranges?|marbles?|slices?|sports?|football|soccer|game|"
           r"shopping|plates?|desks?|waterfalls?|ladders?|staircases?|stairs|library|libraries|rooms?|pumps?|"
           r"planets?|solar system|sieves?|locks?|keys?|conveyor belts?|machines?)")
FRAMING = r"(?:imagine|think of (?:it|this|that|them) (?:like|as)|it'?s (?:kind of |sort of |a bit )?like|picture this)"
REFUSE = (r"(?:no|stop|quit|enough|without|skip|drop|ditch|less|fewer|hate|can'?t stand|tired of|sick of|done with|"
          r"over the|lost me|loses me|throws? me off|annoy\w*|instead of|rather than|other than|avoid|"
          r"(?:don'?t|do not|didn'?t|not) (?:want|need|like|use|using|give|do|bring|get on with|work with)|"
          r"can we not|could you not|please not|stop using|quit using|not (?:another|more|again|a fan|into|helpful|"
          r"helping|working|useful|big on|keen on|good with|with the))")
FAILS = (r"(?:confus\w*|lost me|loses me|lose me|(?:doesn'?t|does not|didn'?t|don'?t|do not) (?:really )?(?:help|work|"
         r"make (?:any )?sense|mean anything|tell me (?:anything|how|what|why))|isn'?t (?:help\w*|working)|"
         r"aren'?t help\w*|makes? no sense|made (?:it|things) worse|making (?:it|things) worse|(?:is|are|was|were) "
         r"(?:just )?making me|breaks? down|falls? apart|distract\w*|fuzzy|(?:is|are|was) (?:silly|weird|wrong|"
         r"useless|unhelpful|pointless|misleading)|mislead\w*|throw\w* me|made (?:it|things|me) (?:harder|worse)|"
         r"making (?:it )?(?:harder|worse)|(?:doesn'?t|don'?t) do it for me|(?:doesn'?t|don'?t) stick|head spin|"
         r"hung up on)")
TEACHER = (r"(?:teachers?|tutors?|professors?|prof|lecturers?|instructors?|coach|sir|miss|mrs?\.? \w+|ms\.? \w+|"
           r"maestr[oa]|profe|sensei|ta|(?:guy|person|woman|man|lady|one) who (?:tutored|taught) me)")
CONTEMPT = (r"(?:stupid|dumb|idiot\w*|lazy|slow|thick|hopeless|useless|not (?:a |an |cut out|trying|smart|bright)|"
            r"never (?:be|get|going|understand|make it|pass|learn)|wast\w*|can'?t do|shouldn'?t bother|give up|"
            r"gave up|too (?:slow|stupid|dumb)|obvious|so basic|should (?:already )?know|failure|disappointment|"
            r"a joke|brain ?dead|no hope|childish|pathetic|rubbish|terrible|awful|bad (?:at|in|with)|"
            r"wasn'?t trying|didn'?t try|isn'?t for me|not for me|not meant for|no (?:ear|talent|brain)|"
            r"embarrass\w*|humiliat\w*)")
VAGUE = (r"(?:around|roughly|about|approximately|a while|soon|a bit|a few|some|simplify|pretty much|basically|kind of|"
         r"sort of|should|might|usually|normally|nearly|close to|short|briefly|enough|relevant|appropriate|"
         r"reasonable|in detail|a little|ish|more or less|pop|plug|chuck|just)")
LITERAL = (r"\bliteral\b|\b(?:take|took|taking|takes) (?:\w+ ){0,2}literally\b|\bliterally (?:what|how|happens|means?|"
           r"is|does|true)\b|\bliteral[- ]minded\b")
SAID = r"(?:when you say|you (?:just |keep )?(?:said|say|saying|called|call|calling|wrote))"
