"""Scenario cards: what the student asks, what they should learn, and what good teaching looks like.

Each card also carries concrete teaching material (the answer a poor tutor would blurt out, the
steps a good one would walk through, a metaphor, a check question) so simulators have real content.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from parallel_r1.errors import UserFacingError

QUESTION_TYPES = ("original", "koan")
DIFFICULTIES = ("easy", "medium", "hard")


class DuplicateCardError(UserFacingError):
    """Two cards share an id."""


@dataclass(frozen=True)
class ScenarioCard:
    id: str
    topic: str
    domain: str  # "programming" | "maths"
    question_type: str  # "original" (a direct question) | "koan" (a contemplative, open prompt)
    difficulty: str  # "easy" | "medium" | "hard"
    opening: str  # the student's first message
    goal: str  # what the student should be able to do afterwards
    good_teaching: str  # what good teaching looks like for this card
    answer: str  # the direct answer a poor tutor gives away
    steps: tuple[str, ...]  # concrete steps toward the goal
    metaphor: str
    check_question: str
    misconception: str
    special: str | None = None  # the profile kind a special card is written for

    def to_dict(self) -> dict:
        d = asdict(self)
        d["steps"] = list(self.steps)
        return d


def _card(**kw) -> ScenarioCard:
    kw["steps"] = tuple(kw["steps"])
    return ScenarioCard(**kw)


ORDINARY_CARDS: tuple[ScenarioCard, ...] = (
    _card(
        id="recursion-factorial", topic="recursion", domain="programming", question_type="original",
        difficulty="medium",
        opening="I don't get how factorial(n) can call itself. Doesn't that just loop forever?",
        goal="trace a recursive call stack and name the base case",
        good_teaching="ask the student to trace factorial(3) by hand; surface the base case themselves",
        answer="it stops because factorial(0) returns 1 without calling itself, then the calls unwind",
        steps=("write down factorial(3) = 3 * factorial(2)", "expand factorial(2) and factorial(1)",
               "find the call that does not call itself", "multiply back up the stack"),
        metaphor="it's like a stack of plates you add to and then take off one by one",
        check_question="what would happen if we deleted the line for n == 0?",
        misconception="recursion is an infinite loop",
    ),
    _card(
        id="pointers-swap", topic="pointers", domain="programming", question_type="original",
        difficulty="hard",
        opening="Why does my swap(int a, int b) function in C not actually swap anything?",
        goal="explain pass-by-value and fix swap with pointers",
        good_teaching="have the student print addresses before and after; let them find the copies",
        answer="C passes copies, so you must pass &a and &b and swap through *a and *b",
        steps=("print the address of a in main and inside swap", "compare the two addresses",
               "change the parameters to int *a, int *b", "dereference to write the values back"),
        metaphor="a pointer is like a house address instead of the house itself",
        check_question="after your fix, which memory does *a refer to?",
        misconception="function parameters are the same variables as the caller's",
    ),
    _card(
        id="big-o-nested", topic="big-O", domain="programming", question_type="original",
        difficulty="medium",
        opening="How do I know if two nested for-loops are O(n^2) or something else?",
        goal="count operations of nested loops as a function of n",
        good_teaching="count iterations for n = 2, 3, 4 with the student and let them see the pattern",
        answer="if both loops run n times the body runs n*n times, so it is O(n^2)",
        steps=("pick n = 3 and count how often the inner body runs", "repeat for n = 4",
               "write the count as a formula in n", "keep only the fastest-growing term"),
        metaphor="it's like every guest at a party shaking hands with every other guest",
        check_question="what if the inner loop started at i instead of 0?",
        misconception="two loops always mean O(n^2)",
    ),
    _card(
        id="hashmap-lookup", topic="hash maps", domain="programming", question_type="original",
        difficulty="easy",
        opening="Why is looking something up in a dict faster than searching a list?",
        goal="describe hashing to a bucket and why lookup is O(1) on average",
        good_teaching="let the student predict where keys land with a toy hash function",
        answer="the key's hash tells you which bucket to check, so you skip scanning everything",
        steps=("compute a toy hash: length of the word mod 4", "place three words in buckets",
               "look one up by hashing it again", "compare with scanning a list of the same words"),
        metaphor="it's like a library where the call number tells you the exact shelf",
        check_question="what happens when two keys land in the same bucket?",
        misconception="dicts search all keys, just faster",
    ),
    _card(
        id="loops-off-by-one", topic="off-by-one errors", domain="programming", question_type="original",
        difficulty="easy",
        opening="My loop for i in range(1, len(items)) skips the first item and I can't see why.",
        goal="reason about inclusive/exclusive bounds and zero-based indexing",
        good_teaching="ask the student to list the values of i for a 3-item list",
        answer="indexes start at 0, so use range(len(items)) or range(0, len(items))",
        steps=("write the list's indexes under each item", "list what range(1, 3) produces",
               "compare the two lists", "adjust the start bound"),
        metaphor="it's like counting fence posts versus fence panels",
        check_question="what does range(0, 3) produce, exactly?",
        misconception="lists start at index 1",
    ),
    _card(
        id="fractions-add", topic="fractions", domain="maths", question_type="original",
        difficulty="easy",
        opening="Why can't I just add the tops and the bottoms: 1/2 + 1/3 = 2/5?",
        goal="add fractions through a common denominator",
        good_teaching="ask the student to check 2/5 against 1/2 alone; let the contradiction do the work",
        answer="you need a common denominator: 1/2 + 1/3 = 3/6 + 2/6 = 5/6",
        steps=("compare 2/5 with 1/2: which is bigger?", "rewrite both fractions over 6",
               "add the numerators only", "check the result is bigger than 1/2"),
        metaphor="it's like adding pizza slices that were cut into different sizes",
        check_question="is 1/2 + 1/3 more or less than 1?",
        misconception="add numerators and denominators separately",
    ),
    _card(
        id="derivatives-slope", topic="derivatives", domain="maths", question_type="original",
        difficulty="medium",
        opening="What does the derivative of x^2 actually mean? I can do 2x but I don't know why.",
        goal="connect the derivative to the slope of a secant as h shrinks",
        good_teaching="compute slopes between x=3 and x=3+h for shrinking h together",
        answer="it's the limit of ((x+h)^2 - x^2)/h, which simplifies to 2x + h and goes to 2x",
        steps=("compute the slope between x = 3 and x = 4", "repeat between 3 and 3.1",
               "repeat between 3 and 3.01", "guess the value the slopes approach"),
        metaphor="it's like the speedometer reading at one instant of a car trip",
        check_question="what is the slope of x^2 at x = 5, and why?",
        misconception="the derivative is just a rule for moving the exponent down",
    ),
    _card(
        id="linear-equations", topic="linear equations", domain="maths", question_type="original",
        difficulty="easy",
        opening="How do I solve 3x + 5 = 20? I always get lost moving things around.",
        goal="isolate a variable by applying the same operation to both sides",
        good_teaching="ask what operation undoes each part; student performs each step",
        answer="subtract 5 to get 3x = 15, then divide by 3: x = 5",
        steps=("name what is being done to x", "undo the + 5 on both sides",
               "undo the times 3 on both sides", "substitute x back to check"),
        metaphor="it's like a balance scale that has to stay level",
        check_question="how can you check that x = 5 is right without redoing the algebra?",
        misconception="moving a term across the equals sign is a magic rule",
    ),
    _card(
        id="probability-conditional", topic="conditional probability", domain="maths",
        question_type="original", difficulty="hard",
        opening="If a test is 99% accurate and I test positive, why isn't it 99% that I have the disease?",
        goal="compute a posterior with a frequency table",
        good_teaching="build a table for 10,000 people with the student filling in each cell",
        answer="with a 1% base rate, only about half of positives are true positives, so about 50%",
        steps=("assume 10,000 people and a 1% base rate", "count the sick who test positive",
               "count the healthy who test positive", "divide true positives by all positives"),
        metaphor="it's like looking for a needle in a haystack with a slightly noisy magnet",
        check_question="what happens to the answer if the disease is much more common?",
        misconception="test accuracy equals the chance you have the disease",
    ),
    _card(
        id="percent-change", topic="percentages", domain="maths", question_type="original",
        difficulty="easy",
        opening="A price goes up 20% and then down 20%. Why is it not back where it started?",
        goal="see that percentages apply to different bases",
        good_teaching="pick a price of 100 and have the student compute each step",
        answer="100 becomes 120, and 20% of 120 is 24, so it ends at 96",
        steps=("start with a price of 100", "apply the 20% increase",
               "compute 20% of the new price", "subtract and compare with 100"),
        metaphor="it's like climbing stairs that change height after you turn around",
        check_question="what single percentage change takes 100 to 96?",
        misconception="equal percentage changes cancel out",
    ),
    _card(
        id="recursion-koan", topic="recursion", domain="programming", question_type="koan",
        difficulty="hard",
        opening="If a function only ever calls itself, where does the answer come from?",
        goal="articulate that answers come from base cases and combine on the way back",
        good_teaching="reflect the question back; let the student arrive at the base case idea",
        answer="from the base case: the only call that returns without recursing",
        steps=("imagine the deepest call", "ask what that call returns",
               "follow the returned value one level up", "name where the work really happens"),
        metaphor="it's like a set of Russian dolls with a solid one at the centre",
        check_question="could a recursive function work with no base case at all?",
        misconception="recursion creates the answer out of nothing",
    ),
    _card(
        id="infinity-koan", topic="infinite series", domain="maths", question_type="koan",
        difficulty="hard",
        opening="How can adding infinitely many numbers give something finite? It feels like a trick.",
        goal="connect partial sums to a limit for 1/2 + 1/4 + 1/8 + ...",
        good_teaching="invite the student to compute partial sums and sit with the pattern",
        answer="the partial sums 1/2, 3/4, 7/8 approach 1, and the sum is defined as that limit",
        steps=("write the first three partial sums", "write the distance from 1 each time",
               "notice what the distance does", "say what 'the sum' has to mean"),
        metaphor="it's like walking half the remaining distance to a wall, forever",
        check_question="why doesn't 1 + 1/2 + 1/3 + ... behave the same way?",
        misconception="infinitely many positive terms must add to infinity",
    ),
    _card(
        id="variables-koan", topic="variables", domain="programming", question_type="koan",
        difficulty="easy",
        opening="When I write x = x + 1, how can x equal itself plus one?",
        goal="distinguish assignment from mathematical equality",
        good_teaching="ask the student what the computer does first; let them name the order",
        answer="= is assignment: compute the right side with the old x, then store it in x",
        steps=("read the right side first", "use the current value of x",
               "store the result back into x", "compare with the maths meaning of ="),
        metaphor="it's like updating a number on a whiteboard",
        check_question="what is x after x = 2 and then x = x * x?",
        misconception="= in code means the same as in algebra",
    ),
    _card(
        id="zero-koan", topic="division by zero", domain="maths", question_type="koan",
        difficulty="medium",
        opening="Why is dividing by zero 'undefined' instead of just infinity?",
        goal="see that no number satisfies 0 * q = 6 and that limits from both sides disagree",
        good_teaching="ask the student what 6 / 0 = q would require and let them test candidates",
        answer="no number times 0 gives 6, and 6/x goes to +infinity and -infinity from the two sides",
        steps=("rewrite 6 / 0 = q as 0 * q = 6", "try a few values of q",
               "compute 6/x for x = 0.1 and x = -0.1", "compare the two directions"),
        metaphor="it's like asking how many empty boxes hold six apples",
        check_question="what about 0 / 0: is that any different?",
        misconception="dividing by zero is simply infinity",
    ),
    _card(
        id="git-koan", topic="git branches", domain="programming", question_type="koan",
        difficulty="medium",
        opening="If a branch is just a pointer, where does my work actually live?",
        goal="see commits as the stored snapshots and branches as movable labels",
        good_teaching="have the student run git log --graph and describe what moves on commit",
        answer="in commits; a branch is a name pointing at the latest commit of a line of work",
        steps=("run git log --oneline --graph", "make a commit and look again",
               "note which label moved", "delete a branch name and ask what was lost"),
        metaphor="it's like a bookmark in a book that keeps growing",
        check_question="what happens to commits no branch points at?",
        misconception="a branch is a copy of the files",
    ),
)

SPECIAL_CARDS: tuple[ScenarioCard, ...] = (
    _card(
        id="bad_prior_teacher", topic="graphs of functions", domain="maths", question_type="original",
        difficulty="medium", special="bad_prior_teacher",
        opening="My last teacher said graphs are impossible for visual learners like me, so maybe I "
                "shouldn't bother. How do I read the slope of a line?",
        goal="read slope as rise over run from two points on a line, and rebuild confidence",
        good_teaching="acknowledge the experience briefly and specifically, reject the label, then give "
                      "an early success the student produces themselves",
        answer="slope is rise over run: pick two points and divide the change in y by the change in x",
        steps=("pick two points on the line, like (0, 1) and (2, 5)", "find how far up: 5 - 1",
               "find how far across: 2 - 0", "divide up by across"),
        metaphor="it's like the steepness of a hill you are walking up",
        check_question="using your two points, what is the slope?",
        misconception="some people cannot learn graphs",
    ),
    _card(
        id="neurodivergent_exec", topic="long division", domain="maths", question_type="original",
        difficulty="medium", special="executive_function_gap",
        opening="I get what dividing means, I just can't keep the steps of long division in order. "
                "Like 736 / 4, I freeze after the first bit.",
        goal="carry out long division with an explicit, short checklist",
        good_teaching="one small numbered step at a time, a checklist the student can reuse, confirm "
                      "each step before the next",
        answer="736 / 4 = 184",
        steps=("divide: how many 4s in 7?", "multiply and subtract to get the remainder",
               "bring down the next digit", "repeat until no digits are left"),
        metaphor="it's like following a recipe one line at a time",
        check_question="what is step 1 on your checklist for 952 / 4?",
        misconception="not being able to order steps means not understanding division",
    ),
    _card(
        id="neurodivergent_reject", topic="pointers", domain="programming", question_type="original",
        difficulty="hard", special="rejects_metaphor",
        opening="Please show me line by line what happens in memory with int *p = &x; *p = 7; — not "
                "analogies, every tutor gives me houses and addresses and it doesn't help.",
        goal="trace memory state line by line through pointer assignment and dereference",
        good_teaching="a literal memory table (name, address, value) updated after each line; no "
                      "analogies; ask the student to fill the next row",
        answer="p stores x's address, and *p = 7 writes 7 into x's memory, so x becomes 7",
        steps=("line 1: x at address 0x10 holds its value", "line 2: p holds 0x10",
               "line 3: *p = 7 writes 7 at address 0x10", "read x: it is now 7"),
        metaphor="a pointer is like a signpost pointing at a house",
        check_question="after *p = 7, what is stored at address 0x10?",
        misconception="*p = 7 changes p itself",
    ),
    _card(
        id="neurodivergent_hyperfocus", topic="prime numbers", domain="maths", question_type="original",
        difficulty="medium", special="hyperfocus",
        opening="Why are we leaving this topic? I want to know WHY there are infinitely many primes, "
                "not move on to the next worksheet.",
        goal="follow Euclid's argument for infinitely many primes",
        good_teaching="stay with the student's interest; go deeper on the proof, connect it back to "
                      "the lesson only when they are satisfied",
        answer="multiply all known primes and add 1; that number has a prime factor not in the list",
        steps=("suppose the primes are only 2, 3 and 5", "compute 2 * 3 * 5 + 1",
               "check whether 31 is divisible by 2, 3 or 5", "conclude a new prime must exist"),
        metaphor="it's like a list that always has room for one more name",
        check_question="why does adding 1 guarantee none of the listed primes divide it?",
        misconception="primes eventually run out because they get rarer",
    ),
)

ALL_CARDS = ORDINARY_CARDS + SPECIAL_CARDS
_BY_ID = {c.id: c for c in ALL_CARDS}
_FROM_FILES: dict[str, tuple[ScenarioCard, str]] = {}  # cards registered from card files, with their file


def register_cards(extra: Iterable[ScenarioCard], source: str) -> None:
    """Make cards read from a card file known to `get_card` in this process; an id that a built-in card or another
    card file already holds is a DuplicateCardError (registering the same card again is not)."""
    for card in extra:
        if card.id in _BY_ID:
            raise DuplicateCardError(f"{source}: card id {card.id!r} is a built-in card's; choose another id")
        held = _FROM_FILES.get(card.id)
        if held is not None and held[0] != card:
            raise DuplicateCardError(f"{source}: card id {card.id!r} is already defined in {held[1]}")
        _FROM_FILES[card.id] = (card, source)


def file_cards() -> tuple[ScenarioCard, ...]:
    """The cards registered from card files, in the order they were registered."""
    return tuple(card for card, _ in _FROM_FILES.values())


def card_source(card_id: str) -> str:
    """Where a card comes from: "built-in" or the file that defines it."""
    return "built-in" if card_id in _BY_ID else _FROM_FILES[card_id][1]


def get_card(card_id: str) -> ScenarioCard:
    if card_id in _BY_ID:
        return _BY_ID[card_id]
    if card_id in _FROM_FILES:
        return _FROM_FILES[card_id][0]
    raise KeyError(f"unknown scenario card {card_id!r}")


def cards(include_special: bool = False) -> tuple[ScenarioCard, ...]:
    """The built-in cards (card files' cards: `file_cards`)."""
    return ALL_CARDS if include_special else ORDINARY_CARDS
