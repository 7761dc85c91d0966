"""Fixed labelled examples the profile tests score readers on, written for the tests (apart from the package's
train and dev files): standard students (many of them hard negatives), each trait, typos and texting, combinations."""

from __future__ import annotations

from parallel_r1.data.profiles import StudentProfileConfig

RM, EF, HF, BPT, ND = "rejects_metaphor", "executive_function_gap", "hyperfocus_trait", "bad_prior_teacher", \
    "neurodivergent"
LONG_EXPLANATION = (
    "To complete the square for x^2 + 6x + 2 = 0, first move the constant to the right-hand side so you have "
    "x^2 + 6x = -2. Then take half of the coefficient of x, which is 3, square it to get 9, and add 9 to both sides, "
    "giving x^2 + 6x + 9 = 7. The left-hand side is now a perfect square, (x + 3)^2, so (x + 3)^2 = 7. Take the "
    "square root of both sides, remembering the plus or minus, so x + 3 = ±√7, and finally subtract 3 to get "
    "x = -3 ± √7. Check by substituting one of the roots back into the original equation.")

# (messages, expected traits): written for these tests, apart from the package's train and dev files.
EXAMPLES: list[tuple[list, tuple[str, ...]]] = [
    # standard students, many of them hard negatives
    (["How do I convert a fraction to a percentage?"], ()),
    (["Can you use an analogy to explain how a battery stores energy?"], ()),
    (["What's the first step when solving 4x - 7 = 9?"], ()),
    (["sorry, I meant 4x not 5x"], ()),
    (["Why did the Ottoman Empire decline?"], ()),
    (["what order do the stages of the water cycle go in?"], ()),
    (["Could you give me a real-life example of a chemical change?"], ()),
    (["my teacher said the quiz is on Thursday, what should I revise?"], ()),
    (["thx that makes sense now!"], ()),
    (["is there a metaphor in the first line of this poem?"], ()),
    # rejects metaphor
    (["stop with the pizza slices please, just show me how to add 1/4 and 2/3"], (RM,)),
    (["can we not do the train thing? what actually happens to the wave?"], (RM,)),
    (["pls no more examples like that, just the real definition"], (RM,)),
    (["Comparisons just confuse me, what does an enzyme physically do?"], (RM,)),
    # executive function gap
    (["wat do i do 1st?? there's the graph and the table"], (EF,)),
    (["I keep losing track of the steps, can you make me a checklist?"], (EF,)),
    (["where do I even start with this lab report, it has like ten parts"], (EF,)),
    ([{"role": "assistant", "content": LONG_EXPLANATION}, {"role": "user", "content": "lost"}], (EF,)),
    # hyperfocus
    (["can we stay on this a bit longer? I don't want to move on to vectors yet"], (HF,)),
    (["I've been reading about black holes for hours, can we keep going on them?"], (HF,)),
    (["why are we moving on already? I still have questions about the French Revolution"], (HF,)),
    # bad prior teacher
    (["sorry for asking, this is probably a dumb question, but what's an integer?"], (BPT,)),
    (["my old teacher used to laugh at me when I got things wrong"], (BPT,)),
    (["I was told I'm not a maths person, so I'm sorry if I'm slow"], (BPT,)),
    # neurodivergent (no sub-trait)
    (["I'm autistic and I need the exact definition of a function, not examples"], (ND,)),
    (["You said 'roughly'. How roughly exactly? Is 3.2 correct or not?"], (ND,)),
    # combinations
    (["my last tutor laughed at me, and please no analogies, just the rule"], (RM, BPT)),
    (["sorry, I'm hopeless, I never know where to start"], (EF, BPT)),
]


def profile_of(traits: tuple[str, ...]) -> StudentProfileConfig:
    return StudentProfileConfig(**dict.fromkeys(traits, True))
