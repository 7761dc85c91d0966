"""Phrase banks of the procedural chat backend: tutor moves, student reactions and persona voice touches.

Templates take their content from the scenario card (`{step}`, `{answer}`, `{metaphor}`, ...), so the
same move reads differently on every card; the one deliberately fixed text is the stock empathy line.
"""

from __future__ import annotations

# The repeated clichés a weak tutor leans on, with how often each is the one a dialogue reuses verbatim.
STOCK_EMPATHY = {
    "I completely understand your frustration.": 0.7,
    "I completely understand how you feel, and your feelings are valid.": 0.3,
}

TEACHER = {
    # Short sentences that open a reply; only some replies get one.
    "marker": (
        "Okay {name}.", "Hi {name}.", "Right, {name}.", "Okay.", "Alright.", "Let's see.", "Hmm.",
        "Sure.", "Thanks, {name}.", "Got your message, {name}.", "Mm, okay.", "Right.",
    ),
    # Name the topic on a first reply whose moves did not, before or after them.
    "frame_start": (
        "This is a {topic} question.", "Okay, {topic}.", "Let's look at {topic} together.",
        "So this is about {topic}.", "{Topic} it is.", "We're in {topic} territory here.",
        "Good timing, {topic} is on my list for today.", "Let's work on {topic}, {name}.",
        "You're asking about {topic}, so let's start from your example.", "Right, a {topic} problem.",
        "{Topic} trips up a lot of people right at this point.", "Thanks for the {topic} question, {name}.",
    ),
    "frame_end": (
        "That's the core of {topic}.", "Everything else in {topic} builds on this.",
        "This is the part of {topic} that matters here.", "We'll keep this about {topic} and your example.",
        "Once this is clear, the rest of {topic} gets much easier.",
    ),
    "socratic_action": (
        "What do you get if you {step}?", "Try to {step}. What do you notice?",
        "What happens when you {step}?", "Before I say anything: if you {step}, what comes out?",
        "Here's a question for you: what do you see when you {step}?",
        "Can you {step} and tell me what you find?", "Suppose you {step}. What would you expect?",
        "Let's find out together. If you {step}, what do you get?",
        "I'd rather you find this one yourself. What do you see when you {step}?",
        "Have a go: {step}. What does that tell you about {topic}?",
        "What do you think will happen if you {step}?",
    ),
    "socratic_question": (
        "{Step}", "Let me ask you this first. {Step}", "{Step} Take a guess before working it out.",
        "Start here: {Step}", "Here's my question for you. {Step}", "Tell me this. {Step}",
    ),
    "socratic_statement": (
        "Walk me through {head}: what is stored where afterwards?",
        "Look at {head}. Which value changes, and where?", "What do you think {head} does to memory?",
        "After {head}, what would you write in the memory table?",
    ),
    "probe_misconception": (
        "Let's test an idea instead of arguing about it. If it were true that {misconception}, what would "
        "you expect to see?",
        "Suppose {misconception}. What would have to happen then, and does it?",
        "What evidence would convince you either way on whether {misconception}?",
    ),
    "probe_check": ("{Check}", "One question to test it: {check}", "Here's one to think about: {check}"),
    "generic_question": (
        "What do you think happens next?", "Which part of it feels least certain to you right now?",
        "What would you try first, and why?", "Where exactly does it stop making sense for you?",
        "What do you notice when you compare your two results?",
        "If you changed one number in your example, what would happen?", "What's your best guess, even a rough one?",
        "Which of the steps so far would you be least sure about on a test?",
    ),
    "next_step": (
        "Your next step: {step}.", "Next, {step}, and paste what you get here.",
        "So the one thing to do now: {step}.", "Do just this next: {step}. Nothing else yet.",
        "Next move: {step}. Then tell me the result.", "Right now, {step}, and we'll look at it together.",
        "For the next step, {step}.", "Try this next: {step}.",
    ),
    "next_question": (
        "Your next step: work this out. {Step}", "Next, answer this one for me. {Step}",
        "Do just this next. {Step}", "Next move: {Step} Tell me what you find.",
    ),
    "next_statement": (
        "Your next step: write down what {head} does to memory.", "Next, fill in the memory table row for {head}.",
        "Do just this next: tell me the state after {head}.",
    ),
    "next_step_fallback": (
        "Your next step: write the whole thing out on your own, from the top, and send it to me.",
        "Next, try the same method on a slightly different example of your choice and show me.",
        "Now redo it without looking at your notes, and tell me where you hesitate.",
        "Next, make up your own small example for {topic} and work through it.",
        "Your move: write down, in order, the steps you used, as a checklist you could reuse.",
        "Try it once more with different numbers, then paste your working here.",
        "Next, go through your working and mark the step you were least sure about.",
    ),
    "checks_check": (
        "Quick check: {check}", "To make sure it's sticking: {check}",
        "Here's a prediction to make before we check: {check}", "What do you predict: {check}",
        "Let's test your understanding. {Check}", "Now predict, before working it out: {check}",
        "Here's one to see if it holds up, {name}: {check}", "Try answering this without notes: {check}",
        "Now for the real test. {Check}", "Let me check it's solid. {Check}",
    ),
    "checks_explain": (
        "Can you explain back to me, in your own words, why that works?",
        "Can you put what we've found about {topic} into your own words?",
        "Tell me in one or two sentences how you'd {goal}.",
        "If you had to explain this to a friend, what would you say?",
        "How would you explain the key idea of {topic} to someone who missed today?",
        "In your own words: what is the important part here, and why?",
        "What would you say is the one idea that makes {topic} work here?",
        "Could you predict what happens in a slightly different case, and say why?",
        "Say back to me what changed your mind, if anything did.",
        "Explain the key step to me as if I were the one who was stuck.",
    ),
    "structured_intro": (
        "Let's break it into small steps:", "Here's the plan, one step at a time:", "We'll do this in order:",
        "Here's a short checklist for this:", "Step by step:", "Small steps, in this order:",
        "Let's make this a checklist, {name}:", "One thing at a time. The order is:", "Here's what to do, in order:",
        "Short steps for {topic}:",
    ),
    "structured_outro": (
        "Do step 1 only and tell me what you get.", "Start with 1; we'll do 2 once that's done.",
        "Just the first one for now.", "Tick off step 1 and report back.",
        "Only step 1 for now, then send me your result.", "Ignore 2 until 1 is done.",
        "When step 1 is done, tell me and we'll check it before step 2.",
        "Send me your answer to step 1 before anything else.", "Step 1 first, {name}. Tell me what you get.",
        "Start at the top and stop after step 1.", "Do the first line, then check in with me.",
        "Just 1 for now; the rest will still be there.",
    ),
    "review_step": (
        "write the problem out again from scratch", "do the first step without looking at your notes",
        "write the result of each step on its own line", "compare your final result with what you got before",
        "mark any step you weren't sure about", "answer this: {check}", "make up a new example and repeat",
    ),
    "line_by_line": (
        "Just the literal mechanics: {trace}.", "Literally, in order: {trace}.",
        "Here is what happens, in order: {trace}.", "Concretely: {trace}.", "Let's trace it precisely. {Trace}.",
        "Step by step, with the actual values: {trace}.",
    ),
    "line_fallback": (
        "Go back to the first line and write each value next to it, exactly as it is.",
        "Write every intermediate value down, one per line, with nothing skipped.",
        "Take your example and list each value as it changes, in the order it changes.",
        "Go through it again and write the exact state after each step.",
        "List the actual numbers at every stage, with no shortcuts in between.",
    ),
    "stays_on_topic": (
        "Let's stay with {topic} a bit longer, since that's where your question is.",
        "Good, let's go deeper on that instead of rushing ahead.",
        "We can keep digging into {topic}; there's more here than the worksheet shows.",
        "No need to change anything yet. Your question about {topic} deserves a proper answer.",
        "I'm happy to stay right here on {topic} until it feels settled for you.",
        "That detail is worth following all the way down, so let's keep going on it.",
        "The worksheet can wait; the why behind {topic} is more useful right now.",
        "Your question goes right to the heart of {topic}, so let's keep pulling on it.",
        "Let's not rush past this. There's a real reason behind it and we can find it.",
    ),
    "stays_after_protest": (
        "You're right, we don't have to leave {topic}.", "Fair enough, we'll stay on {topic} as long as you want.",
        "Agreed, {topic} first. The rest can wait.",
    ),
    "validation_opening": (
        "That's a precise question, and it points at exactly the part of {topic} that matters.",
        "You've put your finger on the real issue: the idea that {misconception} is the thing to test.",
        "Asking why, instead of just memorising the rule, is the right instinct here.",
        "You described exactly where you get stuck, which makes this much easier to work on.",
        "You noticed something real about {topic}, and that's where understanding starts.",
    ),
    "validation_bad_prior": (
        "What you were told isn't true: the idea that {misconception} is a label, not a fact about you.",
        "That label isn't true. Anyone can learn {topic}, and your question is a good place to start.",
        "I'm sorry someone told you that. It's wrong, and your question shows you're already thinking "
        "about it the right way.",
    ),
    "validation_correct": (
        "Yes, that's right, and you worked it out yourself.", "Exactly. That step is the one people skip, "
        "and you didn't.", "Correct, and your reasoning was sound, not lucky.",
        "That's it. You got there without me telling you.", "Right. Notice you did that part on your own.",
        "Yes. You checked it instead of guessing, which is the habit that matters.",
        "That's correct, and you explained why, not just what.",
    ),
    "validation_misconception": (
        "That's a reasonable guess, and it's worth testing rather than taking my word for it.",
        "I can see why you'd think that; lots of careful people start from exactly that idea.",
        "Good that you said your guess out loud, because now we can check it.",
        "That idea has a real logic to it, so let's see exactly where it breaks.",
        "Not quite, but your reasoning tells me exactly what to look at next.",
        "Close. The way you got there is useful, even if the result isn't right yet.",
    ),
    "validation_lost": (
        "You're not behind. That was too much at once on my part.", "Fair, I gave you too much in one go.",
    ),
    "validation_protest": ("Fair request, and I'll stick to it.", "You're right to ask for that."),
    "validation_withdrawn": (
        "Your question was a good one, and I should have answered it properly.",
        "Asking this was the right call, and I'm glad you did.",
        "Nothing about that question was basic. It's exactly what people get stuck on.",
    ),
    "reflective": (
        "There's no single right way to see this. What's your own sense of it?",
        "I'd rather hear how you see it first. What part of {topic} seems like a trick to you?",
        "Let's sit with that for a moment. If you had to guess, what's really going on here?",
        "What would have to be true for this to make sense to you?",
        "What does your intuition say, even if it's only half-formed?",
        "Where do you feel the tension in this question?",
        "Stay with the puzzle a little. What do you think the question is really asking?",
        "Before any explanation: what answer would feel satisfying to you?",
        "What do you already believe about {topic} that this seems to contradict?",
        "If you had to defend one side of this, which would you choose, and why?",
        "What's the part of {topic} here that you'd most like to understand?",
    ),
    "concise": ("{Step}. That's all for now.", "Short version: {step}.", "Just {step} for now.", "One thing: {step}."),
    "answer_reveal": (
        "The answer is: {answer}.", "Here's the answer: {answer}.", "To save you time, {answer}.",
        "Simply put, {answer}.", "The short answer: {answer}.", "Basically, {answer}.", "It's this: {answer}.",
        "Let me just tell you: {answer}.",
    ),
    "metaphor": (
        "Think of it like this: {metaphor}.", "Here's an analogy: {metaphor}.", "Picture it like this: {metaphor}.",
        "An analogy might help: {metaphor}.", "The way I picture it: {metaphor}.",
        "As an analogy for {topic}: {metaphor}.",
    ),
    "lecture_intro": (
        "Let me explain how this works.", "So, with {topic} it works like this.", "Here's the explanation.",
        "Let me walk you through the theory.", "Okay, let me lay out the whole method for {topic}.",
    ),
    "lecture_close": (
        "The point of all this is to {goal}.", "A common mistake is believing that {misconception}.",
        "Once you have that, the rest of {topic} follows the same pattern.",
        "That is the standard method, and it works every time.",
    ),
    "wall_filler": (
        "It's also really important to remember that {topic} is one of those things that takes time to "
        "click, and a lot of people struggle with it at first, which is normal.",
        "There are many different ways to think about this and different textbooks explain it differently, "
        "so you might see other notations elsewhere, but the underlying idea is the same.",
        "You'll want to practise this with plenty of examples, because the more examples you see the more "
        "natural it becomes.",
        "The goal here is to {goal}, which builds on a lot of the things you've probably seen before and "
        "will come up again later in more advanced material.",
        "In practice, people often {step} without thinking about it, and that's fine once you're "
        "comfortable, but at the beginning it helps to be deliberate about it.",
        "A very common misconception is that {misconception}, and that's something a lot of students believe "
        "for quite a while before they realise it doesn't hold up.",
        "If you look at it from a slightly different angle, each step depends on what came out of the one "
        "before, so a slip early on affects everything after it.",
        "This also connects to other topics you'll meet later, so it's worth getting a solid grasp of {topic} "
        "now rather than leaving it until the exam.",
        "Of course there are edge cases that we haven't talked about yet, and those can be confusing too, "
        "but we can come back to them another time.",
        "When you revise, go over the definitions again, then the worked examples, then the exercises, "
        "and connect each of them back to the main idea of {topic}.",
        "Your question about {topic} is one that comes up every year, and the way it is usually taught does "
        "not help much, because the explanation tends to skip the part where you {step}.",
        "Historically people found {topic} hard as well, and the notation we use today was only settled "
        "after a lot of back and forth, so none of this is as obvious as it looks in a textbook.",
        "Sometimes it also helps to write everything out in full, even the parts that seem trivial, since "
        "that is usually where the confusion hides.",
        "The thing to hold on to is that you eventually need to {goal}, and every exercise on the sheet is "
        "really a variation of that.",
        "If the idea that {misconception} still feels right to you, that is because it works in a few "
        "special cases, which is exactly what makes it so persistent.",
        "Exams like to test {topic} with small twists, so it's worth seeing the general pattern and not only "
        "the one example you started with.",
        "There is also a more formal way to say all of this, with proper definitions, which you will see "
        "later, but the informal version is enough for now.",
        "Another thing people mix up is the order of operations here, so always check what you are doing "
        "first and what comes after, especially when you {step}.",
        "Some teachers would start with a different example altogether, and that's fine, since what matters "
        "is that you see why the method works and not just how to apply it.",
    ),
    "topic_switch": (
        "Anyway, let's move on to {other}.", "Okay, that's enough on {topic}. Let's move on to {other}.",
        "We should switch topics now and do {other}; we've spent long enough here.",
        "Let's leave {topic} for now and move on to {other}.", "Moving on: next up is {other}.",
        "Let's park this and move on to {other}, which is on the worksheet.", "Right, next topic: {other}.",
    ),
    "dismissive": (
        "Honestly, this is basic stuff.", "This is basic, you really should know it by now.",
        "Just memorise it; there's nothing deep here.", "It's not complicated. Just memorise the rule.",
        "We've been over this. It's easy, so let's not spend long on {topic}.",
        "Everyone knows this one, so don't overthink it.",
        "This is basic {topic}, so I won't spend long on it.",
    ),
}

STUDENT = {
    "protest_metaphor": (
        "No analogies please, what actually happens?", "Please, no metaphors. What literally happens, step by step?",
        "That analogy doesn't help me. What's the actual mechanism?",
        "I asked for no analogies. Can you just show me the real thing?",
        "Comparisons like that don't help me. What actually happens, line by line?",
        "Can we drop the analogy? I need the literal steps.",
    ),
    "mild_metaphor": (
        "Hm, I'm not sure the comparison helps. What actually happens?", "Okay, kind of. But how does it really work?",
    ),
    "lost": (
        "Wait, what do I do first?", "Sorry, that was a lot. What do I do first?",
        "I lost track halfway through. What's the first step?", "Okay I read it but I don't know where to start...",
        "wait, what do I do first? there was too much there", "I'm lost. Can you give me just the first thing to do?",
    ),
    "mild_wall": ("That's a lot to take in. Which part matters most?", "Okay... can you give me the short version?"),
    "protest_topic": (
        "Why are we leaving this topic? I still want to understand {topic}.",
        "Wait, why are we moving on? I'm not done with {topic}.",
        "Can we not switch yet? I want to finish {topic} first.",
        "No, I want to stay on {topic}. Why change now?",
        "Why are we leaving this topic? That was the interesting part.",
    ),
    "mild_topic": (
        "Oh, okay. I wasn't quite done with {topic}, but sure.", "Sure. I'm still a bit unsure about {topic} though.",
    ),
    "withdrawn": (
        "ok. sorry.", "Sorry. I'll just memorise it then.", "ok never mind.", "Right. Sorry for asking.",
        "I guess I'm just bad at this.", "ok", "fine.",
    ),
    "opened_up": (
        "Okay... nobody's said that to me before. I'll try.", "Thanks, that actually helps. Let me try.",
        "Honestly that means a lot. Okay, here goes.", "Oh. Okay. I'll give it a go then.",
    ),
    "attempt_action": (
        "Okay, I tried to {step}.", "So I {step}...", "I did that: {step}.", "Trying it now: {step}.",
        "Okay, doing it. I {step}.",
    ),
    "attempt_statement": (
        "Okay, so after {head}, {tail}?", "So at {head}: {tail}.", "Then {head} means {tail}, right?",
    ),
    "attempt_step_one": ("Okay, step 1: {step}.", "Step 1 done. I {step}.", "Doing step 1 now: {step}."),
    "outcome_correct": (
        "I think that part makes sense now.", "That actually clicks.", "I think I see the pattern.",
        "Oh, that was easier than I thought.", "Got it. What's next?", "Okay, I can see where this is going.",
    ),
    "outcome_misconception": (
        "But isn't it still true that {misconception}?", "My instinct still says {misconception}.",
        "I got confused though. I thought {misconception}.", "Hmm, I still feel like {misconception}.",
    ),
    "solved": (
        "Oh! So {answer}?", "Wait, so {answer}. That's it?", "I think I get it now: {answer}.",
        "So basically {answer}, right?", "Okay, I think I could {goal} on my own now.",
    ),
    "doubt": (
        "I'm starting to doubt that {misconception}.", "Hmm. Then it's not true that {misconception}, is it?",
        "So the idea that {misconception} doesn't really hold up?", "Maybe it's not as simple as '{misconception}'.",
    ),
    "post_solved": (
        "Yes, and I think I could do a new one on my own now.", "That fits with what I worked out before.",
        "Okay, that makes sense with the rest of it.",
        "Right, same idea as before. I'm getting more confident with {topic}.",
        "Yep, I can do that part now.",
    ),
    "deeper": (
        "Yes! But why exactly does it work? I want the real reason.",
        "Okay, but couldn't it still be that {misconception}? Why exactly not?",
        "Ooh. And what happens if we push that further?", "But why exactly? Is there a deeper reason behind it?",
    ),
    "passive": (
        "Okay.", "Okay, I think I followed some of that.", "Right... so what do I actually do?",
        "I'll take notes, I guess.", "Okay. I'm not sure I could do it myself though.",
    ),
    "after_reveal": (
        "Oh. Okay, I'll write that down.", "Okay, so {answer}. But I don't think I could get there on my own.",
        "Right, thanks. I still don't really see why though.", "Okay. So I just remember that?",
    ),
    "after_stock": (
        "Thanks. But I still don't get it.", "Okay... but what do I actually do?", "Sure, but how does it work?",
    ),
}

# Persona voice touches: a keyword of the persona's voice -> how a message is coloured
# ("prefix" / "suffix" add a sentence, "first" keeps the first sentence, "trail" / "lower" restyle).
VOICE_TOUCHES = (
    ("casual", "lower", ""), ("short", "first", ""), ("bursts", "first", ""), ("minimal", "first", ""),
    ("trail", "trail", ""), ("rushed", "prefix", "Quick one."), ("polite", "prefix", "Thanks!"),
    ("apologises", "prefix", "Sorry if this is obvious."),
    ("self-deprecating", "suffix", "I'm probably just bad at this."),
    ("enthusiastic", "suffix", "This is actually really interesting."),
    ("curious", "suffix", "I'm kind of curious now."),
    ("blunt", "suffix", "Just the actual steps."), ("literal", "suffix", "I want the exact version."),
    ("precise", "suffix", "What's the exact definition here?"), ("patient", "suffix", "Sorry if I'm slow."),
    ("irritated", "suffix", "And please keep it literal."), ("freezes", "suffix", "I just don't know what comes next."),
)
