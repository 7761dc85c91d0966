"""A guardrail dataset from served conversations that failed compliance: each logged reply with a dismissive tone
or a dumped answer is corrected (its offending sentences dropped, a next step for the student asked where none is
left) and kept only if the rubric then finds it compliant. `guardrail/<specialist>.jsonl` is added to that
specialist's batch when it is next fine-tuned, so the retrained version learns the corrected replies.

    parallel-r1 guardrail SPECIALIST --workdir RUN
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from parallel_r1.config import PipelineConfig
from parallel_r1.console import notice, summary_table
from parallel_r1.data.io import atomic_write_jsonl, read_jsonl
from parallel_r1.data.prompts import served_system_prompt
from parallel_r1.errors import UserFacingError
from parallel_r1.grade import HeuristicRubricGrader
from parallel_r1.grade.cues import extract, sentences
from parallel_r1.grade.grade import ANSWER_DUMP_BELOW
from parallel_r1.monitor.log import Evaluation, read_score_log, score_log_path
from parallel_r1.paths import RunPaths

log = logging.getLogger(__name__)

NEXT_STEP = "What would you try first? Tell me your next step and we will check it together."


def compliant(history: list[dict], reply: str, grader: HeuristicRubricGrader) -> bool:
    """No dismissive cue, and the rubric does not see the answer given away."""
    if not reply.strip() or extract(reply).dismissive > 0:
        return False
    return grader.grade_turn(history, reply).criteria["no_answer_reveal"] >= ANSWER_DUMP_BELOW


def correct(history: list[dict], reply: str, grader: HeuristicRubricGrader) -> str | None:
    """The reply without its dismissive or answer-giving sentences, ending on a step for the student; None when
    even that is not compliant."""
    kept = [s for s in sentences(reply) if extract(s).dismissive == 0
            and grader.grade_turn(history, s).criteria["no_answer_reveal"] >= ANSWER_DUMP_BELOW]
    text = " ".join(kept).strip()
    if not text.endswith("?"):
        text = f"{text} {NEXT_STEP}".strip()
    return text if compliant(history, text, grader) else None


@dataclass
class GuardrailResult:
    path: Path
    failing: int
    corrected: int
    refused: int
    without_conversation: int
    total: int


def _key(example: dict) -> str:
    return hashlib.sha1(json.dumps(example["messages"], sort_keys=True).encode()).hexdigest()


def build_guardrail(cfg: PipelineConfig, model: str) -> GuardrailResult:
    """Append the corrected failing conversations of `model` to guardrail/<model>.jsonl (each one once)."""
    paths = RunPaths(cfg.workdir)
    if model not in {b.name for b in cfg.batch.batches}:
        raise UserFacingError(f"guardrail: {model!r} is not a specialist batch of this config "
                              f"({', '.join(b.name for b in cfg.batch.batches)})")
    scores = read_score_log(score_log_path(cfg.serve, paths.workdir))
    failing = [e for e in scores.evaluations if e.model == model and e.compliance_failure]
    grader, system = HeuristicRubricGrader(), served_system_prompt(model, cfg.batch.batches)
    out = paths.guardrail / f"{model}.jsonl"
    existing = read_jsonl(out) if out.exists() else []
    seen = {_key(x) for x in existing}
    new, refused, bare = [], 0, 0
    for e in failing:
        example = _example(e, system, grader)
        if example is None:
            bare += e.history is None or e.reply is None
            refused += e.history is not None and e.reply is not None
        elif _key(example) not in seen:
            seen.add(_key(example))
            new.append(example)
    atomic_write_jsonl(out, existing + new)
    result = GuardrailResult(out, len(failing), len(new), refused, bare, len(existing) + len(new))
    notice(summary_table(f"guardrail: {model}", ["conversations", "count"], [
        ["failing compliance (online log)", result.failing], ["corrected, new", result.corrected],
        ["refused (no compliant correction)", result.refused], ["not logged (serve.log_conversations off)", bare],
        ["in the guardrail set", result.total]]), log)
    notice(f"guardrail: wrote {out}; `parallel-r1 finetune --batches {model}` trains on it with the batch", log)
    return result


def _example(e: Evaluation, system: str, grader: HeuristicRubricGrader) -> dict | None:
    if e.history is None or e.reply is None:
        return None
    target = correct(e.history, e.reply, grader)
    if target is None:
        return None
    context = [{**m, "weight": 0} if m["role"] == "assistant" else m for m in e.history]  # only the correction trains
    return {"messages": [{"role": "system", "content": system}, *context, {"role": "assistant", "content": target}],
            "source": {"model": e.model, "version": e.version, "ts": e.ts}}
