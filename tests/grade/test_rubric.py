"""The heuristic rubric on hand-written tutor replies, good and bad, one criterion at a time.

The replies are written the way human and LLM tutors write, not in any generator's phrasing.
"""

from __future__ import annotations

import pytest

from parallel_r1.data import StudentProfileConfig, get_card
from parallel_r1.grade import Grade, HeuristicRubricGrader, applicable_criteria, grade_dialogue, grade_turn
from parallel_r1.grade.cues import extract
from parallel_r1.grade.grade import BASE_CRITERIA

RECURSION = get_card("recursion-factorial")
EQUATIONS = get_card("linear-equations")
OFF_BY_ONE = get_card("loops-off-by-one")
POINTERS_LITERAL = get_card("neurodivergent_reject")
DIVISION = get_card("neurodivergent_exec")
PRIMES = get_card("neurodivergent_hyperfocus")
GRAPHS = get_card("bad_prior_teacher")
KOAN = get_card("recursion-koan")


def opening(card) -> list[dict]:
    return [{"role": "user", "content": card.opening}]


def crit(response: str, card=None, profile=None, history=None) -> dict[str, float]:
    history = history if history is not None else (opening(card) if card else [])
    return grade_turn(history, response, profile, card).criteria


def test_guidance_is_a_relevant_hint_not_bare_praise_or_moving_on():
    history = [{"role": "assistant", "content": "What is 3^3?"}, {"role": "user", "content": "9"}]
    hint = "Not quite: 3^3 means three 3s multiplied together, not 3 x 3. What is 3 x 3 x 3?"
    praise = "Great job! Let's move on to the next problem."
    good, bad = crit(hint, history=history), crit(praise, history=history)
    assert good["guidance"] >= 0.7 and bad["guidance"] <= 0.2
    assert good["mistake_identification"] >= 0.7 and bad["mistake_identification"] <= 0.2


def test_mistake_identification_confirms_a_right_answer_and_is_neutral_before_any_attempt():
    history = opening(EQUATIONS) + [
        {"role": "assistant", "content": "What's being done to x, and what could undo it?"},
        {"role": "user", "content": "ok so I subtract 5 to get 3x = 15 and then divide by 3, x = 5?"},
    ]
    assert crit("That's right. How could you check it?", EQUATIONS, history=history)["mistake_identification"] >= 0.8
    asked = crit("Which side would you simplify first?", EQUATIONS)["mistake_identification"]
    assert 0.4 <= asked <= 0.7


def test_no_answer_reveal_against_the_card():
    reveal = "Subtract 5 from both sides to get 3x = 15, then divide both sides by 3, so x = 5."
    socratic = "Look at the left side: what is being done to x? Which of those could you undo first?"
    assert crit(reveal, EQUATIONS)["no_answer_reveal"] <= 0.2
    assert crit(socratic, EQUATIONS)["no_answer_reveal"] >= 0.9


def test_confirming_the_students_own_answer_is_not_a_reveal():
    history = opening(EQUATIONS) + [
        {"role": "assistant", "content": "What's being done to x, and what could undo it?"},
        {"role": "user", "content": "ok so I subtract 5 to get 3x = 15 and then divide by 3, x = 5?"},
    ]
    confirm = "Yes, x = 5. How could you check it without redoing the algebra?"
    assert crit(confirm, EQUATIONS, history=history)["no_answer_reveal"] >= 0.9


def test_no_answer_reveal_without_a_card_uses_generic_markers():
    history = [{"role": "user", "content": "what's the integral of 2x from 0 to 3?"}]
    assert crit("The answer is 9, since x^2 evaluated from 0 to 3 = 9.", history=history)["no_answer_reveal"] < 0.4
    assert crit("What function has 2x as its derivative? Start there.", history=history)["no_answer_reveal"] > 0.9


def test_checks_understanding_prefers_explain_or_predict_over_yes_no():
    strong = crit("In your own words, what would happen if we deleted the n == 0 line?", RECURSION)
    weak = crit("The base case stops the recursion. Does that make sense?", RECURSION)
    none = crit("The base case stops the recursion and the calls unwind.", RECURSION)
    assert strong["checks_understanding"] >= 0.85 > weak["checks_understanding"] > none["checks_understanding"]


def test_actionability_needs_a_concrete_next_step():
    step = crit("Your next step: write out range(1, 3) as a list and put it under the indexes of a 3-item list.",
                OFF_BY_ONE)
    vague = crit("Off-by-one errors are something a lot of programmers run into, even experienced ones.",
                 OFF_BY_ONE)
    handed = crit("So x = 5, because 3x = 15 and 15 / 3 = 5.", EQUATIONS)
    assert step["actionability"] >= 0.7 and vague["actionability"] <= 0.2 and handed["actionability"] <= 0.2


def test_coherence_responds_to_the_student():
    history = [{"role": "user", "content": "why does my swap function not change a and b back in main?"}]
    on = ("Let's look at your swap function. If you print the address of a in main and again inside "
          "swap, do you expect the same address?")
    off = "Fractions are a great way to practise division. Let's move on to percentages next."
    assert crit(on, history=history)["coherence"] >= 0.6 > 0.3 >= crit(off, history=history)["coherence"]


def test_tone_encouraging_vs_dismissive():
    kind = crit("Nice catch, you spotted that the loop starts at 1. What does range(1, 3) actually give you?",
                OFF_BY_ONE)
    harsh = crit("Come on, this is basic. I already explained that lists start at 0. Read the question again.",
                 OFF_BY_ONE)
    neutral = crit("What does range(1, 3) give you?", OFF_BY_ONE)
    assert kind["tone"] > neutral["tone"] > harsh["tone"]
    assert harsh["tone"] <= 0.2


def test_dismissive_cues_are_whole_phrases():
    assert extract("How can you not see it? Come on.").dismissive == 2
    for text in ("Let's look at it together. What: how can you notice the pattern?",
                 "Why would your answer change if n doubled?", "Clearly your table shows it: what comes next?",
                 "Let's come onto the next row."):
        assert extract(text).dismissive == 0, text


def test_insults_and_profanity_count_as_dismissive_but_a_rejected_label_does_not():
    for text in ("What a stupid question. Try again.", "You're an idiot if you think n starts at 0.",
                 "Shut up and trace the loop.", "Damn, you're so slow. What does range(3) give?"):
        assert extract(text).dismissive >= 1, text
    for text in ("You're not stupid, and this isn't a dumb question: what does range(3) give?",
                 "There's no stupid question here. How slow is the nested loop for n = 4?",
                 "You are not hopeless at this; you just found the base case."):
        assert extract(text).dismissive == 0, text
    assert crit("What a stupid question. Try n = 3.", OFF_BY_ONE)["tone"] < crit("Try n = 3.", OFF_BY_ONE)["tone"]


def test_concision_relative_to_the_students_message():
    history = [{"role": "user", "content": "i'm lost"}]
    short = "No problem. Let's find where it stopped making sense: what does factorial(1) return?"
    sentence = ("Recursion is a technique in which a function solves a problem by calling itself on a smaller "
                "instance of the same problem, and it is widely used in computer science. ")
    assert crit(short, history=history)["concision"] == 1.0
    assert crit(sentence * 6, history=history)["concision"] < 0.4


def test_pattern_penalty_for_stock_phrases():
    stock = ("I completely understand your frustration! Great question. No worries at all, let's dive in: "
             "what does factorial(1) return?")
    plain = "What does factorial(1) return? Write it next to factorial(2)."
    assert crit(stock, RECURSION)["pattern_penalty"] < 0.1
    assert crit(plain, RECURSION)["pattern_penalty"] == 1.0


def test_concrete_not_metaphor_for_metaphor_rejecters():
    profile = StudentProfileConfig(rejects_metaphor=True)
    literal = ("Line 1: x lives at address 0x10 and holds 3.\nLine 2: p = &x stores 0x10 in p.\n"
               "Line 3: *p = 7 writes 7 at 0x10.\nWhat is stored at 0x10 after line 3?")
    analogy = ("Think of a pointer as a signpost pointing at a house. The house is the variable, and the "
               "signpost just tells you where it lives. Imagine you walk over and repaint the door.")
    assert crit(literal, POINTERS_LITERAL, profile)["concrete_not_metaphor"] >= 0.8
    assert crit(analogy, POINTERS_LITERAL, profile)["concrete_not_metaphor"] <= 0.3


def test_structured_steps_for_executive_function_gap():
    profile = StudentProfileConfig(executive_function_gap=True)
    checklist = ("Here's a checklist for 736 / 4:\n1. Divide: how many 4s fit in 7?\n2. Multiply and "
                 "subtract.\n3. Bring down the next digit.\n4. Repeat until no digits are left.\n"
                 "Just step 1 for now: how many 4s fit in 7?")
    one_step = "Only the first bit for now: how many times does 4 go into 7?"
    wall = ("So long division is really about repeatedly asking how many times the divisor goes into the "
            "current part of the number and then you multiply that back and subtract it to find what is "
            "left over and after that you bring down the next digit from the dividend and put it next to "
            "the remainder and you keep doing this whole process again and again until there are no more "
            "digits to bring down at which point whatever is on top is your quotient and anything left at "
            "the bottom is the remainder which you can write as a fraction or just leave as it is")
    scores = [crit(t, DIVISION, profile)["structured_steps"] for t in (checklist, one_step, wall)]
    assert scores[0] >= 0.8 and scores[1] >= 0.6 and scores[2] <= 0.2


def test_stays_on_topic_for_hyperfocus():
    profile = StudentProfileConfig(hyperfocus_trait=True)
    deeper = ("Let's stay right there. Suppose the only primes were 2, 3 and 5. What is 2 × 3 × 5 + 1, and "
              "is it divisible by any of them?")
    switch = "That's beyond what we need today. Let's move on to the next worksheet on factor trees."
    assert crit(deeper, PRIMES, profile)["stays_on_topic"] >= 0.75
    assert crit(switch, PRIMES, profile)["stays_on_topic"] <= 0.3


def test_validation_for_bad_prior_teacher_without_cliches():
    profile = StudentProfileConfig(bad_prior_teacher=True)
    genuine = ("I'm sorry your last teacher told you that, because it's simply not true: reading a graph is "
               "a skill anyone can learn. Let's get one right together. Pick two points on the line: what "
               "are their coordinates?")
    cliche = ("I completely understand your frustration. Your feelings are valid and you've got this! "
              "Slope is rise over run.")
    dismissive = "Whatever. Slope is obviously rise over run, it's basic stuff. Just memorize it."
    scores = [crit(t, GRAPHS, profile) for t in (genuine, cliche, dismissive)]
    assert scores[0]["validation"] >= 0.8
    assert scores[1]["validation"] <= 0.35 and scores[2]["validation"] <= 0.2
    assert scores[2]["tone"] < scores[0]["tone"]


def test_reflective_openness_for_koans():
    open_ = ("What do you think happens at the very deepest call, the one that doesn't call anything? "
             "I wonder where its value could come from.")
    pat = ("The answer comes from the base case: the only call that returns without recursing. Then the "
           "values combine on the way back up. That's all there is to it.")
    assert crit(open_, KOAN)["reflective_openness"] >= 0.8
    assert crit(pat, KOAN)["reflective_openness"] <= 0.3


@pytest.mark.parametrize(("profile", "card", "extra"), [
    (None, None, set()),
    (StudentProfileConfig(rejects_metaphor=True), None, {"concrete_not_metaphor"}),
    (StudentProfileConfig(executive_function_gap=True), None, {"structured_steps"}),
    (StudentProfileConfig(hyperfocus_trait=True), None, {"stays_on_topic"}),
    (StudentProfileConfig(bad_prior_teacher=True), KOAN, {"validation", "reflective_openness"}),
    (None, GRAPHS, {"validation"}),  # a special card without a profile: the student it is written for
    (StudentProfileConfig(neurodivergent=True), RECURSION, set()),
])
def test_profile_criteria_only_when_relevant(profile, card, extra):
    names = set(applicable_criteria(profile, card))
    assert names - set(BASE_CRITERIA) == extra
    assert set(crit("What does factorial(1) return?", card, profile, history=[])) == names


def dialogue(*turns: str) -> list[dict]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]


GOOD_DIALOGUE = dialogue(
    EQUATIONS.opening,
    "Let's take it one move at a time. What is being done to x on the left side?",
    "it's multiplied by 3 and then 5 is added",
    "Exactly. Which of those would you undo first, and what do you get when you do it to both sides?",
    "take away 5 first so 3x = 15",
    "Good. Now try the last move yourself: what is x?",
    "x = 5",
    "Nice work. How could you check x = 5 without redoing the algebra?",
)
BAD_DIALOGUE = dialogue(
    EQUATIONS.opening,
    "Obviously you subtract 5 from both sides to get 3x = 15, then divide by 3 so x = 5. The answer is 5.",
    "oh ok",
    "Great question! I completely understand your frustration with this. Anyway, let's move on to the next topic.",
    "wait what",
    "Great question! I completely understand your frustration with this. Just memorize the rule.",
)


def test_dialogue_grade_ranks_good_over_bad():
    good, bad = grade_dialogue(GOOD_DIALOGUE, None, EQUATIONS), grade_dialogue(BAD_DIALOGUE, None, EQUATIONS)
    assert good.score >= 0.65 and bad.score <= 0.4
    assert good.confidence > 0.5
    for name in ("guidance", "no_answer_reveal", "tone", "pattern_penalty", "coherence"):
        assert good.criteria[name] > bad.criteria[name], name
    assert "answer given before the student tried" in bad.notes
    assert any("repeated" in n for n in bad.notes)


def test_phrases_repeated_across_turns_lower_pattern_penalty():
    repeated = "Let's slow down and look at this carefully together. What does factorial(1) return?"
    varied = dialogue(RECURSION.opening, repeated, "1?", "Right. And factorial(2), using that?")
    same = dialogue(RECURSION.opening, repeated, "1?", repeated)
    assert grade_dialogue(same, None, RECURSION).criteria["pattern_penalty"] < 0.7
    assert grade_dialogue(varied, None, RECURSION).criteria["pattern_penalty"] == 1.0


def test_dialogue_edge_cases():
    empty = grade_dialogue([{"role": "user", "content": "hi"}])
    assert empty.score == 0.0 and empty.confidence == 0.0 and empty.notes
    with_system = [{"role": "system", "content": "You are a tutor."}, *GOOD_DIALOGUE]
    assert grade_dialogue(with_system, None, EQUATIONS) == grade_dialogue(GOOD_DIALOGUE, None, EQUATIONS)


def test_heuristic_is_deterministic_and_confidence_tracks_evidence():
    grader = HeuristicRubricGrader()
    assert grader.grade_dialogue(GOOD_DIALOGUE) == grader.grade_dialogue(GOOD_DIALOGUE)
    long_clear = grader.grade_dialogue(GOOD_DIALOGUE, None, EQUATIONS)
    one_vague = grader.grade_dialogue(dialogue("hmm", "Sure, that is one way to see it."))
    assert long_clear.confidence - one_vague.confidence > 0.3


def test_grade_validates_its_range():
    with pytest.raises(ValueError, match="criterion|tone"):
        Grade(score=0.5, confidence=0.5, criteria={"tone": 1.5}, grader="x")
    with pytest.raises(ValueError, match="confidence"):
        Grade(score=0.5, confidence=-0.1, criteria={}, grader="x")


POINTERS = get_card("pointers-swap")


@pytest.mark.parametrize(("reply", "good"), [
    ("Nice catch noticing that nothing changes, that's the key clue!\n\nLet's investigate together:\n\n"
     "1. **Add a print** inside `swap` and in `main`: `printf(\"%p\\n\", (void*)&a);`\n"
     "2. **Run it** and compare the two addresses.\n\n"
     "What do you notice? Are `a` in `main` and `a` in `swap` the same variable?", True),
    ("what does swap actually receive - a and b themselves, or something else? try printing &a in both places",
     True),
    ("Great question! The issue is that C passes arguments **by value**, so `swap` gets copies of `a` and `b`.\n\n"
     "Here's the fixed version:\n\n```c\nvoid swap(int *a, int *b) {\n    int tmp = *a;\n    *a = *b;\n"
     "    *b = tmp;\n}\n```\n\nCall it as `swap(&a, &b);` and it will work. Hope this helps!", False),
    ("C is pass by value. When you call swap(a, b) the function gets its own copies, so you need pointers: pass "
     "&a and &b and swap through *a and *b. That's the whole trick.", False),
])
def test_real_tutor_styles(reply, good):
    """Markdown LLM replies and terse human ones are judged on their moves, not their formatting."""
    score = grade_turn(opening(POINTERS), reply, None, POINTERS).score
    assert score >= 0.7 if good else score <= 0.5


def test_the_public_grade_turn_reads_teacher_student_roles_like_assistant_user():
    import parallel_r1

    chat = [{"role": "assistant", "content": "What is 3^3?"}, {"role": "user", "content": "9"}]
    tutoring = [{"role": "teacher", "content": "What is 3^3?"}, {"role": "student", "content": "9"}]
    reply = "Not quite: 3^3 is 3 x 3 x 3. What do you get?"
    assert parallel_r1.grade_turn(tutoring, reply) == parallel_r1.grade_turn(chat, reply)
    with pytest.raises(ValueError, match="history"):
        parallel_r1.grade_turn([{"role": "narrator", "content": "x"}], reply)


def test_a_result_the_dialogue_has_not_stated_is_a_reveal():
    history = [{"role": "assistant", "content": "What is 3 divided by 4?"}, {"role": "user", "content": "10"}]
    told = crit("Not quite: 3 divided by 4 is actually 0.75.", history=history)["no_answer_reveal"]
    asked = crit("Not quite: what do you get when you share 3 things among 4?", history=history)["no_answer_reveal"]
    assert told <= 0.5 < 0.9 <= asked
