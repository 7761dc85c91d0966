"""Replies of full model folders (no adapters) under the `ParallelExecutionPolicy`: `compare` backtests a
Parallel-R1 model with them, and `parallel-sft` validates its cold start with their scores (format adherence, the
rubric of what the student sees, the parallel KPIs).

Replies are cached per model (keyed by held-out set, prompt, sampling, engine and weights), so a rerun after a
failed check, or after a kill, generates only what is missing.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from parallel_r1.compare.heldout import EvalItem, fingerprint
from parallel_r1.compare.replies import Reply, ReplyCache, prompts_for
from parallel_r1.compare.scoring import score_replies
from parallel_r1.config import PipelineConfig
from parallel_r1.data.io import file_digest
from parallel_r1.data.parallel_format import student_view, validate_reply
from parallel_r1.inference.engine import SamplingParams
from parallel_r1.inference.policy import ParallelExecutionPolicy, parallel_kpis


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


def eval_policy(cfg: PipelineConfig) -> ParallelExecutionPolicy:
    """The execution policy of the validation: `parallel.inference`, asking for the branch count trained on."""
    return ParallelExecutionPolicy.from_config(cfg.parallel.inference).model_copy(
        update={"branches": cfg.parallel.branches, "max_blocks": cfg.parallel.max_blocks})


def parallel_score(adherence: float, rubric: float, format_weight: float) -> float:
    return format_weight * adherence + (1 - format_weight) * rubric


def weights_digest(model_dir: Path) -> str:
    """The content hash of a model folder's weights: what the evaluation records of each model it answered with."""
    return file_digest(*sorted(Path(model_dir).glob("*.safetensors")))


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
