"""The validation of the Parallel-R1 cold start before RL: the starting point (base model + tags) and the SFT'd
model answer the same held-out prefixes (eval slices, never in training) under the `ParallelExecutionPolicy`
instruction, with the same sampling seeds. Each model gets its format adherence (share of replies valid by
`validate_reply`) and the rubric score of what the student sees (`student_view`; an empty view, e.g. a reply cut
off inside its first block, scores 0: the student saw nothing); their weighted mean is the parallel score. The SFT'd
model must raise it by at least `parallel.sft.min_uplift` (relative), and not by format adherence alone: its rubric
must not fall (the paired bootstrap interval of the per-prefix rubric difference, within
`parallel.sft.max_rubric_drop`). `eval.json` records both checks, the weights it evaluated and why it failed;
`parallel-r1 rl` reads it (`validation_problem`) before it starts from the SFT'd model.

Replies are cached per model (keyed by held-out set, prompt, sampling, engine and weights), so a rerun after a
failed check, or after a kill, generates only what is missing.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from parallel_r1.config import PipelineConfig
from parallel_r1.curate.parallel_format import student_view, validate_reply
from parallel_r1.data.io import file_digest
from parallel_r1.evaluate.heldout import EvalItem, _prefix_key, build_heldout, fingerprint
from parallel_r1.evaluate.replies import Reply, ReplyCache, prompts_for
from parallel_r1.evaluate.scoring import score_replies
from parallel_r1.evaluate.stats import paired_bootstrap_ci
from parallel_r1.inference.engine import SamplingParams
from parallel_r1.inference.policy import ParallelExecutionPolicy, parallel_kpis

START, SFT = "start", "sft"
UPLIFT_FLOOR = 0.01  # the uplift is relative to max(starting score, this): finite when the start scores 0


@dataclass
class ModelEval:
    """One model's parallel evaluation."""

    name: str
    n_replies: int
    format_adherence: float
    rubric: float  # mean rubric score of the student's view of each reply
    score: float  # format_weight * format_adherence + (1 - format_weight) * rubric
    mean_path_diversity: float
    consensus_rate: float
    format_issues: dict[str, int]  # why the invalid replies are invalid: reason -> replies
    examples: list[str] = field(default_factory=list)
    item_rubric: dict[str, float] = field(default_factory=dict)  # held-out prefix -> mean rubric of its replies


@dataclass
class RubricCheck:
    """Whether the rubric of the student's view did not fall: the SFT'd minus the starting point's mean rubric per
    held-out prefix, with its paired bootstrap interval (None without a prefix both answered)."""

    before: float
    after: float
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    level: float
    prefixes: int
    max_drop: float
    passed: bool


@dataclass
class UpliftCheck:
    """The verdict: the SFT'd model's relative uplift of the parallel score over the starting point, and its rubric
    not falling; `reason` says which failed and by how much (None when both passed)."""

    before: float
    after: float
    uplift: float
    min_uplift: float
    uplift_passed: bool
    rubric: RubricCheck
    passed: bool
    reason: str | None
    message: str


def eval_policy(cfg: PipelineConfig) -> ParallelExecutionPolicy:
    """The execution policy of the validation: `parallel.inference`, asking for the branch count trained on."""
    return ParallelExecutionPolicy.from_config(cfg.parallel.inference).model_copy(
        update={"branches": cfg.parallel.branches, "max_blocks": cfg.parallel.max_blocks})


def training_prefix_keys(records: list[dict]) -> set[str]:
    """Every conversation prefix ending with a student turn in the parallel training records (system prompt and
    target left out), in the held-out set's key, so that no such prefix is evaluated."""
    keys = set()
    for record in records:
        history = [m for m in record["messages"] if m["role"] != "system"][:-1]
        keys.update(_prefix_key(history[:i + 1]) for i, m in enumerate(history) if m["role"] == "user")
    return keys


def heldout_items(cfg: PipelineConfig, exclude: set[str]) -> tuple[list[EvalItem], int]:
    """`parallel.sft.eval_prompts_per_slice` held-out prefixes per eval slice, none of them in `exclude`."""
    ecfg = cfg.eval.model_copy(update={"prompts_per_slice": cfg.parallel.sft.eval_prompts_per_slice})
    return build_heldout(ecfg, exclude)


def parallel_score(adherence: float, rubric: float, format_weight: float) -> float:
    return format_weight * adherence + (1 - format_weight) * rubric


def check_rubric(start: ModelEval, sft: ModelEval, max_drop: float, *, samples: int = 2000, level: float = 0.95,
                 seed: int = 0) -> RubricCheck:
    """Passes when the lower bound of the paired interval of the per-prefix rubric difference is >= -max_drop."""
    shared = sorted(set(start.item_rubric) & set(sft.item_rubric))
    if not shared:
        return RubricCheck(start.rubric, sft.rubric, None, None, None, level, 0, max_drop, False)
    diffs = np.array([sft.item_rubric[k] - start.item_rubric[k] for k in shared])
    low, high = paired_bootstrap_ci(diffs, samples, level, seed)
    return RubricCheck(start.rubric, sft.rubric, float(diffs.mean()), low, high, level, len(shared), max_drop,
                       low >= -max_drop)


def _rubric_text(r: RubricCheck) -> str:
    if r.delta is None:
        return f"rubric {r.before:.3f} -> {r.after:.3f} (no held-out prefix answered by both models)"
    return (f"rubric {r.before:.3f} -> {r.after:.3f} (paired difference {r.delta:+.3f}, {r.level:.0%} CI "
            f"{r.ci_low:+.3f} to {r.ci_high:+.3f} over {r.prefixes} held-out prefixes)")


def check_uplift(start: ModelEval, sft: ModelEval, min_uplift: float, max_rubric_drop: float = 0.0, *,
                 samples: int = 2000, level: float = 0.95, seed: int = 0) -> UpliftCheck:
    """Whether the SFT'd model's parallel score is at least (1 + min_uplift) x the starting point's, and its rubric
    does not fall (`check_rubric`): format adherence alone must not carry the uplift."""
    uplift = (sft.score - start.score) / max(start.score, UPLIFT_FLOOR)
    uplift_passed = uplift >= min_uplift
    rubric = check_rubric(start, sft, max_rubric_drop, samples=samples, level=level, seed=seed)
    detail = (f"parallel score {start.score:.3f} -> {sft.score:.3f} (format adherence {start.format_adherence:.3f} "
              f"-> {sft.format_adherence:.3f}, {_rubric_text(rubric)}): uplift {uplift:+.1%}")
    reasons = []
    if not uplift_passed:
        reasons.append(f"it does not reach the required uplift: {uplift:+.1%} < {min_uplift:.1%} "
                       "(parallel.sft.min_uplift)")
    if not rubric.passed:
        bound = "no held-out prefix to compare" if rubric.delta is None else (
            f"paired difference {rubric.delta:+.3f}, its {rubric.level:.0%} CI reaches {rubric.ci_low:+.3f}, below "
            f"{-max_rubric_drop:+.3f}")
        reasons.append(f"the rubric score may have fallen ({rubric.before:.3f} -> {rubric.after:.3f}; {bound}; "
                       "parallel.sft.max_rubric_drop), so the uplift may be format adherence alone")
    reason = "; ".join(reasons) or None
    if reason is None:
        message = (f"parallel-sft: {detail} >= {min_uplift:.1%} (parallel.sft.min_uplift), and the rubric does not "
                   "fall: ready for `parallel-r1 rl`")
    else:
        message = (f"parallel-sft: the SFT'd model is not ready for `parallel-r1 rl`: {reason}. {detail}. Train "
                   "longer (parallel.sft.epochs / learning_rate) or on more data (parallel.dataset_threshold), or "
                   "evaluate more prefixes (parallel.sft.eval_prompts_per_slice) if the interval is wide, then run "
                   "`parallel-r1 parallel-sft --force`")
    return UpliftCheck(start.score, sft.score, uplift, min_uplift, uplift_passed, rubric, reason is None, reason,
                       message)


def weights_digest(model_dir: Path) -> str:
    """The content hash of a model folder's weights: what the evaluation records of each model it answered with."""
    return file_digest(*sorted(Path(model_dir).glob("*.safetensors")))


def validation_problem(record: dict, model_dir: Path) -> str | None:
    """Why an `eval.json` record does not clear `model_dir` to start RL, or None when it does: it predates the
    rubric check, it evaluated other weights, or its check failed."""
    if "checks" not in record or SFT not in record.get("weights", {}):
        return ("it was written before the rubric check and the weights record: run `parallel-r1 parallel-sft` "
                "to re-evaluate (cached replies are reused)")
    if record["weights"][SFT] != weights_digest(model_dir):
        return (f"it evaluated other weights than those in {model_dir} (the model changed since): run "
                "`parallel-r1 parallel-sft` to validate them")
    if not record["passed"]:
        return f"the parallel-SFT validation failed: {record['reason']}"
    return None


class ParallelEvaluation:
    """Generates and scores the replies of full model folders (no adapters) on one held-out set."""

    def __init__(self, cfg: PipelineConfig, items: list[EvalItem], cache_dir: Path):
        self.cfg = cfg
        self.items = items
        self.policy = eval_policy(cfg)
        self.system_prompt = self.policy.system_prompt()
        self.sampling: SamplingParams = replace(self.policy.sampling_params(cfg.eval.sampling_seed),
                                                n=cfg.parallel.sft.samples_per_prompt)
        self.cache = ReplyCache(cache_dir)
        self.engine_name = ""
        self.weights: dict[str, str] = {}  # model name -> weights_digest of the folder it answered with
        self.engine = None  # one model's engine at a time, closed as soon as it has answered

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def _prompts(self, model_dir: Path) -> list[list[dict]]:
        from transformers import AutoConfig, AutoTokenizer

        context = self.cfg.inference.max_model_len or AutoConfig.from_pretrained(model_dir).max_position_embeddings
        return prompts_for(self.items, AutoTokenizer.from_pretrained(model_dir), context, self.policy.max_tokens,
                           self.system_prompt)

    def replies(self, name: str, model_dir: Path) -> list[Reply]:
        """The model's replies to every item: from the cache when its key matches, else generated and cached."""
        from parallel_r1.inference import build_engine
        from parallel_r1.inference.factory import resolve_engine_name

        self.engine_name = resolve_engine_name(self.cfg.inference)
        self.weights[name] = weights_digest(model_dir)
        key = {"heldout": fingerprint(self.items), "sampling": repr(self.sampling), "engine": self.engine_name,
               "system": self.system_prompt, "weights": self.weights[name]}
        cached = self.cache.get(name, key)
        if cached is not None:
            return cached
        prompts = self._prompts(model_dir)
        self.close()
        self.engine = build_engine(self.cfg.inference, model_dir)
        completions = self.engine.generate(prompts, self.sampling)
        self.close()
        replies = [Reply(name, item.item_id, k, text, (c.completion_tokens or [0] * len(c.texts))[k],
                         (c.finish_reasons or ["stop"] * len(c.texts))[k])
                   for item, c in zip(self.items, completions, strict=True) for k, text in enumerate(c.texts)]
        self.cache.put(name, key, replies)
        return replies

    def score(self, name: str, replies: list[Reply]) -> ModelEval:
        """Format adherence, rubric of the student's view, the parallel score and the parallel KPIs."""
        max_blocks = self.policy.max_blocks
        parsed = [validate_reply(r.text, max_blocks=max_blocks) for r in replies]
        views = [replace(r, text=student_view(r.text)) for r in replies]
        grades = [s.score if v.text.strip() else 0.0 for s, v in zip(score_replies(self.items, views), views,
                                                                        strict=True)]
        rubric = statistics.fmean(grades) if grades else 0.0
        by_item: dict[str, list[float]] = defaultdict(list)
        for reply, grade in zip(replies, grades, strict=True):
            by_item[reply.item_id].append(grade)
        adherence = sum(p.valid for p in parsed) / len(parsed) if parsed else 0.0
        issues = Counter(reason for p in parsed for reason in p.reasons)
        kpis = parallel_kpis([r.text for r in replies], max_blocks=max_blocks)
        return ModelEval(name=name, n_replies=len(replies), format_adherence=adherence, rubric=rubric,
                         score=parallel_score(adherence, rubric, self.cfg.parallel.sft.format_weight),
                         mean_path_diversity=kpis.mean_path_diversity, consensus_rate=kpis.consensus_rate,
                         format_issues=dict(issues.most_common()), examples=[r.text for r in replies[:2]],
                         item_rubric={k: statistics.fmean(v) for k, v in by_item.items()})

    def evaluate(self, name: str, model_dir: Path) -> ModelEval:
        return self.score(name, self.replies(name, model_dir))

    def meta(self) -> dict:
        return {"items": len(self.items), "heldout_fingerprint": fingerprint(self.items),
                "slices": sorted({s for i in self.items for s in i.slices}), "engine": self.engine_name,
                "policy": self.policy.model_dump(), "samples_per_prompt": self.sampling.n,
                "system_prompt": self.system_prompt, "weights": dict(self.weights)}


def evaluation_record(results: dict[str, ModelEval], check: UpliftCheck, meta: dict) -> dict:
    """What `eval.json` holds: both models, the deltas, both checks, the verdict (with its reason) and how it was
    measured."""
    start, sft = results[START], results[SFT]
    deltas = {k: getattr(sft, k) - getattr(start, k) for k in ("format_adherence", "rubric", "score")}
    checks = {"uplift": {"passed": check.uplift_passed, "before": check.before, "after": check.after,
                         "uplift": check.uplift, "min_uplift": check.min_uplift},
              "rubric": asdict(check.rubric)}
    return {"passed": check.passed, "reason": check.reason, "message": check.message, "uplift": check.uplift,
            "min_uplift": check.min_uplift, "checks": checks, "models": {n: asdict(r) for n, r in results.items()},
            "deltas": deltas, **meta}
