"""The validation of the Parallel-R1 cold start before RL: the starting point (base model + tags) and the SFT'd
model answer the same held-out prefixes (eval slices, never in training) under the `ParallelExecutionPolicy`
instruction, with the same sampling seeds. Each model gets its format adherence (share of replies valid by
`validate_reply`) and the rubric score of what the student sees (`student_view`; an empty view, e.g. a reply cut
off inside its first block, scores 0: the student saw nothing); their weighted mean is the parallel score, and the
SFT'd model must raise it by at least `parallel.sft.min_uplift` (relative).

Replies are cached per model (keyed by held-out set, prompt, sampling, engine and weights), so a rerun after a
failed check, or after a kill, generates only what is missing.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from parallel_r1.config import PipelineConfig
from parallel_r1.curate.parallel_format import student_view, validate_reply
from parallel_r1.data.io import file_digest
from parallel_r1.evaluate.heldout import EvalItem, _prefix_key, build_heldout, fingerprint
from parallel_r1.evaluate.replies import Reply, ReplyCache, prompts_for
from parallel_r1.evaluate.scoring import score_replies
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


@dataclass
class UpliftCheck:
    """The verdict: the SFT'd model's relative uplift of the parallel score over the starting point."""

    before: float
    after: float
    uplift: float
    min_uplift: float
    passed: bool
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


def check_uplift(start: ModelEval, sft: ModelEval, min_uplift: float) -> UpliftCheck:
    """Whether the SFT'd model's parallel score is at least (1 + min_uplift) x the starting point's."""
    uplift = (sft.score - start.score) / max(start.score, UPLIFT_FLOOR)
    passed = uplift >= min_uplift
    detail = (f"parallel score {start.score:.3f} -> {sft.score:.3f} (format adherence {start.format_adherence:.3f} "
              f"-> {sft.format_adherence:.3f}, rubric {start.rubric:.3f} -> {sft.rubric:.3f}): uplift {uplift:+.1%}")
    if passed:
        message = f"parallel-sft: {detail} >= {min_uplift:.1%} (parallel.sft.min_uplift): ready for `parallel-r1 rl`"
    else:
        message = (f"parallel-sft: the SFT'd model does not reach the required uplift before RL: {detail} < "
                   f"{min_uplift:.1%} (parallel.sft.min_uplift). Not ready for `parallel-r1 rl`: train longer "
                   "(parallel.sft.epochs / learning_rate) or on more data (parallel.dataset_threshold), then run "
                   "`parallel-r1 parallel-sft --force`")
    return UpliftCheck(start.score, sft.score, uplift, min_uplift, passed, message)


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
        key = {"heldout": fingerprint(self.items), "sampling": repr(self.sampling), "engine": self.engine_name,
               "system": self.system_prompt, "weights": file_digest(*sorted(Path(model_dir).glob("*.safetensors")))}
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
        adherence = sum(p.valid for p in parsed) / len(parsed) if parsed else 0.0
        issues = Counter(reason for p in parsed for reason in p.reasons)
        kpis = parallel_kpis([r.text for r in replies], max_blocks=max_blocks)
        return ModelEval(name=name, n_replies=len(replies), format_adherence=adherence, rubric=rubric,
                         score=parallel_score(adherence, rubric, self.cfg.parallel.sft.format_weight),
                         mean_path_diversity=kpis.mean_path_diversity, consensus_rate=kpis.consensus_rate,
                         format_issues=dict(issues.most_common()), examples=[r.text for r in replies[:2]])

    def evaluate(self, name: str, model_dir: Path) -> ModelEval:
        return self.score(name, self.replies(name, model_dir))

    def meta(self) -> dict:
        return {"items": len(self.items), "heldout_fingerprint": fingerprint(self.items),
                "slices": sorted({s for i in self.items for s in i.slices}), "engine": self.engine_name,
                "policy": self.policy.model_dump(), "samples_per_prompt": self.sampling.n,
                "system_prompt": self.system_prompt}


def evaluation_record(results: dict[str, ModelEval], check: UpliftCheck, meta: dict) -> dict:
    """What `eval.json` holds: both models, the deltas, the verdict and how it was measured."""
    start, sft = results[START], results[SFT]
    deltas = {k: getattr(sft, k) - getattr(start, k) for k in ("format_adherence", "rubric", "score")}
    return {"passed": check.passed, "message": check.message, "uplift": check.uplift, "min_uplift": check.min_uplift,
            "models": {n: asdict(r) for n, r in results.items()}, "deltas": deltas, **meta}
