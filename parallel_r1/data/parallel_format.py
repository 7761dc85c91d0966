"""The Parallel-R1 reply format: build, parse and validate `<Parallel><Path>…</Path>…</Parallel><Summary>…</Summary>`.

The tag layout is the one the paper's released code checks (`check_parallel_thinking_format` in
zhengkid/Parallel-R1): a block holds two or more paths, its summary follows it directly, and text may stand
between blocks. Malformed text is reported as a `ParsedReply` with reasons, never as an exception.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

PARALLEL_OPEN, PARALLEL_CLOSE = "<Parallel>", "</Parallel>"
PATH_OPEN, PATH_CLOSE = "<Path>", "</Path>"
SUMMARY_OPEN, SUMMARY_CLOSE = "<Summary>", "</Summary>"
SPECIAL_TOKENS = (PARALLEL_OPEN, PARALLEL_CLOSE, PATH_OPEN, PATH_CLOSE, SUMMARY_OPEN, SUMMARY_CLOSE)
MIN_PATHS = 2
DEFAULT_MAX_BLOCKS = 3

# Why a reply is malformed; `FormatIssue.reason` is one of these.
UNCLOSED_TAG = "unclosed_tag"
NESTED_PARALLEL = "nested_parallel"
TOO_FEW_PATHS = "too_few_paths"
EMPTY_PATH = "empty_path"
MISSING_SUMMARY = "missing_summary"
EMPTY_SUMMARY = "empty_summary"
STRAY_CLOSING_TAG = "stray_closing_tag"
MISPLACED_TAG = "misplaced_tag"
TEXT_OUTSIDE_PATH = "text_outside_path"
TOO_MANY_BLOCKS = "too_many_blocks"
NO_PARALLEL_BLOCK = "no_parallel_block"
REASONS = (UNCLOSED_TAG, NESTED_PARALLEL, TOO_FEW_PATHS, EMPTY_PATH, MISSING_SUMMARY, EMPTY_SUMMARY,
           STRAY_CLOSING_TAG, MISPLACED_TAG, TEXT_OUTSIDE_PATH, TOO_MANY_BLOCKS, NO_PARALLEL_BLOCK)

_TAG = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))
_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class FormatIssue:
    """One thing wrong with a reply: a reason code (see `REASONS`), a readable message, where it was found."""

    reason: str
    message: str
    position: int  # character offset in the parsed text
    block: int | None = None  # index of the block it belongs to, if any


@dataclass
class ParallelBlock:
    """One parallel block: its paths (raw text between the path tags) and its summary (None when missing)."""

    paths: list[str] = field(default_factory=list)
    summary: str | None = None


@dataclass
class ParsedReply:
    """A reply split into the text outside blocks and its blocks; `issues` is empty for a well-formed reply."""

    text: str
    blocks: list[ParallelBlock]
    outside: list[str]  # text before, between and after blocks: len(blocks) + 1 pieces
    issues: list[FormatIssue]

    @property
    def valid(self) -> bool:
        return not self.issues

    @property
    def reasons(self) -> list[str]:
        return list(dict.fromkeys(i.reason for i in self.issues))

    @property
    def uses_parallel(self) -> bool:
        """Whether the reply is well formed and has at least one parallel block."""
        return self.valid and bool(self.blocks)

    def block_ok(self, index: int) -> bool:
        """Whether block `index` has no issue of its own."""
        return not any(i.block == index for i in self.issues)

    def student_view(self) -> str:
        """What the student sees: the text outside blocks, each block replaced by its summary."""
        pieces = [self.outside[0]]
        for block, after in zip(self.blocks, self.outside[1:], strict=True):
            pieces += [block.summary or "", after]
        return "\n".join(p.strip() for p in pieces if p.strip())


def parallel_instruction(branches: int, max_blocks: int = DEFAULT_MAX_BLOCKS) -> str:
    """The system-prompt sentence that asks for `branches` paths per block (training data and inference agree)."""
    return (f"Before you answer, think in parallel: inside {PARALLEL_OPEN}...{PARALLEL_CLOSE} write {branches} "
            f"different approaches, each in {PATH_OPEN}...{PATH_CLOSE}, then choose or merge them in "
            f"{SUMMARY_OPEN}...{SUMMARY_CLOSE}; use at most {max_blocks} such blocks. The student sees only the "
            "summaries and your text outside the blocks.")


def format_block(paths: Sequence[str], summary: str) -> str:
    """One block in the paper's layout; ValueError for fewer than two paths, empty text or tags inside text."""
    if len(paths) < MIN_PATHS:
        raise ValueError(f"a parallel block needs at least {MIN_PATHS} paths, got {len(paths)}")
    for name, text in [*((f"path {i}", p) for i, p in enumerate(paths)), ("summary", summary)]:
        if not text.strip():
            raise ValueError(f"{name} is empty")
        if _TAG.search(text):
            raise ValueError(f"{name} contains a format tag: {text!r}")
    body = "".join(f"{PATH_OPEN}{p}{PATH_CLOSE}" for p in paths)
    return f"{PARALLEL_OPEN}{body}{PARALLEL_CLOSE}{SUMMARY_OPEN}{summary}{SUMMARY_CLOSE}"


def format_reply(parts: Sequence[str | ParallelBlock]) -> str:
    """A reply from plain text pieces and blocks, in order (text between blocks is kept as given)."""
    out = []
    for part in parts:
        if isinstance(part, ParallelBlock):
            out.append(format_block(part.paths, part.summary or ""))
        elif _TAG.search(part):
            raise ValueError(f"plain text contains a format tag: {part!r}")
        else:
            out.append(part)
    return "".join(out)


class _Parser:
    """A left-to-right state machine over the tags; it records issues and recovers so later ones are found too."""

    def __init__(self, text: str, max_blocks: int, min_paths: int):
        self.text, self.max_blocks, self.min_paths = text, max_blocks, min_paths
        self.state = "outside"  # outside | parallel | path | after_parallel | summary
        self.blocks: list[ParallelBlock] = []
        self.outside: list[str] = [""]
        self.issues: list[FormatIssue] = []
        self.buffer = ""  # text of the open path or summary
        self.opened_at = 0  # where the open block / path / summary began

    def issue(self, reason: str, message: str, position: int, in_block: bool = True) -> None:
        block = len(self.blocks) - 1 if in_block and self.blocks else None
        self.issues.append(FormatIssue(reason, message, position, block))

    def run(self) -> ParsedReply:
        pos = 0
        for m in _TAG.finditer(self.text):
            self.on_text(self.text[pos:m.start()], pos)
            self.on_tag(m.group(), m.start())
            pos = m.end()
        self.on_text(self.text[pos:], pos)
        self.finish(len(self.text))
        if len(self.blocks) > self.max_blocks:
            self.issues.append(FormatIssue(TOO_MANY_BLOCKS, f"{len(self.blocks)} parallel blocks, at most "
                                                            f"{self.max_blocks} allowed", len(self.text)))
        return ParsedReply(self.text, self.blocks, self.outside, self.issues)

    def on_text(self, text: str, pos: int) -> None:
        if self.state == "outside":
            self.outside[-1] += text
        elif self.state in ("path", "summary"):
            self.buffer += text
        elif text.strip():
            if self.state == "parallel":
                self.issue(TEXT_OUTSIDE_PATH, f"text {text.strip()[:30]!r} inside <Parallel> but outside any "
                                              "<Path>", pos)
            else:
                self.missing_summary(pos)
                self.outside[-1] += text

    def on_tag(self, tag: str, pos: int) -> None:
        getattr(self, f"in_{self.state}")(tag, pos)

    def in_outside(self, tag: str, pos: int) -> None:
        if tag == PARALLEL_OPEN:
            self.blocks.append(ParallelBlock())
            self.state, self.opened_at = "parallel", pos
        elif tag.startswith("</"):
            self.issue(STRAY_CLOSING_TAG, f"{tag} at {pos} closes nothing", pos, in_block=False)
        else:
            where = "a </Parallel>" if tag == SUMMARY_OPEN else "a <Parallel>"
            self.issue(MISPLACED_TAG, f"{tag} at {pos} is not inside or right after {where}", pos, in_block=False)

    def in_parallel(self, tag: str, pos: int) -> None:
        if tag == PATH_OPEN:
            self.state, self.buffer, self.opened_at = "path", "", pos
        elif tag == PARALLEL_CLOSE:
            n = len(self.blocks[-1].paths)
            if n < self.min_paths:
                self.issue(TOO_FEW_PATHS, f"<Parallel> block closed at {pos} with {n} path(s), needs at least "
                                          f"{self.min_paths}", pos)
            self.state = "after_parallel"
        elif tag == PARALLEL_OPEN:
            self.issue(NESTED_PARALLEL, f"<Parallel> at {pos} inside another <Parallel>", pos)
        elif tag.startswith("</"):
            self.issue(STRAY_CLOSING_TAG, f"{tag} at {pos} closes nothing", pos)
        else:
            self.issue(MISPLACED_TAG, f"{tag} at {pos} inside <Parallel> (only <Path> belongs there)", pos)

    def in_path(self, tag: str, pos: int) -> None:
        if tag == PATH_CLOSE:
            self.close_path(pos)
        elif tag == PARALLEL_OPEN:
            self.issue(NESTED_PARALLEL, f"<Parallel> at {pos} inside a <Path>", pos)
        elif tag in (PATH_OPEN, PARALLEL_CLOSE):
            self.issue(UNCLOSED_TAG, f"<Path> opened at {self.opened_at} is not closed before {tag} at {pos}", pos)
            self.close_path(pos)
            self.in_parallel(tag, pos)
        else:
            self.issue(MISPLACED_TAG, f"{tag} at {pos} inside a <Path>", pos)

    def close_path(self, pos: int) -> None:
        if not self.buffer.strip():
            self.issue(EMPTY_PATH, f"empty <Path> ending at {pos}", pos)
        self.blocks[-1].paths.append(self.buffer)
        self.state = "parallel"

    def in_after_parallel(self, tag: str, pos: int) -> None:
        if tag == SUMMARY_OPEN:
            self.state, self.buffer, self.opened_at = "summary", "", pos
        else:
            self.missing_summary(pos)
            self.in_outside(tag, pos)

    def missing_summary(self, pos: int) -> None:
        self.issue(MISSING_SUMMARY, f"no <Summary> right after the </Parallel> of block {len(self.blocks) - 1}", pos)
        self.state = "outside"
        self.outside.append("")

    def in_summary(self, tag: str, pos: int) -> None:
        if tag == SUMMARY_CLOSE:
            self.close_summary(pos)
        elif tag == PARALLEL_OPEN:
            self.issue(UNCLOSED_TAG, f"<Summary> opened at {self.opened_at} is not closed before <Parallel> at "
                                     f"{pos}", pos)
            self.close_summary(pos)
            self.in_outside(tag, pos)
        else:
            self.issue(MISPLACED_TAG, f"{tag} at {pos} inside a <Summary>", pos)

    def close_summary(self, pos: int) -> None:
        if not self.buffer.strip():
            self.issue(EMPTY_SUMMARY, f"empty <Summary> ending at {pos}", pos)
        self.blocks[-1].summary = self.buffer
        self.state = "outside"
        self.outside.append("")

    def finish(self, end: int) -> None:
        if self.state == "path":
            self.issue(UNCLOSED_TAG, f"<Path> opened at {self.opened_at} is never closed", end)
            self.blocks[-1].paths.append(self.buffer)
            self.state = "parallel"
        if self.state == "parallel":
            self.issue(UNCLOSED_TAG, f"<Parallel> opened at {self.opened_at} is never closed", end)
            self.outside.append("")
        elif self.state == "after_parallel":
            self.missing_summary(end)
        elif self.state == "summary":
            self.issue(UNCLOSED_TAG, f"<Summary> opened at {self.opened_at} is never closed", end)
            self.blocks[-1].summary = self.buffer
            self.outside.append("")


def parse_reply(text: str, max_blocks: int = DEFAULT_MAX_BLOCKS, min_paths: int = MIN_PATHS) -> ParsedReply:
    """Split a reply into text and parallel blocks and list what is malformed; a reply without blocks is valid."""
    if max_blocks < 1 or min_paths < 1:
        raise ValueError(f"max_blocks and min_paths must be >= 1, got {max_blocks} and {min_paths}")
    return _Parser(text, max_blocks, min_paths).run()


def validate_reply(text: str, max_blocks: int = DEFAULT_MAX_BLOCKS, min_paths: int = MIN_PATHS,
                   require_parallel: bool = True) -> ParsedReply:
    """`parse_reply`, plus (by default) an issue when the reply has no parallel block at all."""
    parsed = parse_reply(text, max_blocks, min_paths)
    if require_parallel and not parsed.blocks:
        parsed.issues.append(FormatIssue(NO_PARALLEL_BLOCK, "the reply has no <Parallel> block", 0))
    return parsed


def student_view(text: str) -> str:
    """The part of a reply the student sees (summaries and text outside blocks), however well formed it is."""
    return parse_reply(text).student_view()


# ---------------------------------------------------------------- measures over the paths of a block
def words(text: str) -> list[str]:
    """Lower-cased word tokens, the unit of every n-gram measure here."""
    return _WORD.findall(text.lower())


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu(hypothesis: str, reference: str, max_n: int = 4) -> float:
    """Sentence BLEU of one text against another (add-one smoothing above unigrams, brevity penalty); 0 if empty."""
    hyp, ref = words(hypothesis), words(reference)
    if not hyp or not ref:
        return 0.0
    log_precision = 0.0
    for n in range(1, max_n + 1):
        h, r = _ngrams(hyp, n), _ngrams(ref, n)
        matched, total = sum((h & r).values()), max(1, sum(h.values()))
        smooth = 0 if n == 1 else 1
        if matched + smooth == 0:
            return 0.0
        log_precision += math.log((matched + smooth) / (total + smooth)) / max_n
    brevity = 1.0 if len(hyp) >= len(ref) else math.exp(1 - len(ref) / len(hyp))
    return brevity * math.exp(log_precision)


def path_diversity(paths: Sequence[str], max_n: int = 4) -> float:
    """1 - mean pairwise self-BLEU (both directions) of the paths: 0 for copies, near 1 for unrelated texts."""
    pairs = list(combinations(paths, 2))
    if not pairs:
        return 0.0
    similarity = sum(bleu(a, b, max_n) + bleu(b, a, max_n) for a, b in pairs) / (2 * len(pairs))
    return 1.0 - similarity


def overlap(a: str, b: str) -> float:
    """How much two texts say the same: the mean of their unigram and bigram F1 (1 for the same words)."""
    ta, tb = words(a), words(b)
    scores = []
    for n in (1, 2):
        ga, gb = _ngrams(ta, n), _ngrams(tb, n)
        matched = sum((ga & gb).values())
        total = sum(ga.values()) + sum(gb.values())
        scores.append(2 * matched / total if total else 0.0)
    return sum(scores) / len(scores)
