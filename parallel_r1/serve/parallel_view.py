"""The student's view of a reply in the Parallel-R1 format, whole or while it streams: the text outside the
`<Parallel>` blocks and each block's summary (`student_view`), never the paths.

While streaming, text is passed on only up to a point where what the student sees cannot change any more: before an
open block whose summary has not closed yet, and before a trailing piece that may be the start of a tag. The
concatenated deltas of a well-formed reply equal its whole student view.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from parallel_r1.data.parallel_format import PARALLEL_OPEN, SPECIAL_TOKENS, SUMMARY_CLOSE, student_view
from parallel_r1.serve.generation import Delta, Generation, TextDeltas


def settled_prefix(raw: str) -> str:
    """The longest prefix of a growing reply whose student view later text cannot change."""
    tail = raw.rfind("<")
    if tail >= 0 and any(tag.startswith(raw[tail:]) and tag != raw[tail:] for tag in SPECIAL_TOKENS):
        raw = raw[:tail]  # a tag still coming
    opened = raw.rfind(PARALLEL_OPEN)
    if opened >= 0 and SUMMARY_CLOSE not in raw[opened:]:
        raw = raw[:opened]
    return raw


def student_generation(done: Generation) -> Generation:
    """A whole reply as the student sees it (a refusal unchanged); token counts stay those generated."""
    return done if done.error else replace(done, texts=[student_view(t) for t in done.texts])


async def student_stream(events: AsyncIterator[Delta | Generation], n: int) -> AsyncIterator[Delta | Generation]:
    """A backend's stream of `n` choices (deltas of the raw replies, then the `Generation`) as the student sees it."""
    raw = [""] * n
    views = [TextDeltas() for _ in range(n)]
    async for event in events:
        if isinstance(event, Generation):
            done = student_generation(event)
            for i, text in enumerate(done.texts):
                if rest := views[i].finish(text):
                    yield Delta(i, rest)
            yield done
            return
        raw[event.index] += event.text
        if text := views[event.index].update(student_view(settled_prefix(raw[event.index]))):
            yield Delta(event.index, text)
