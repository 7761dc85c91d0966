"""Score one adapter on a few held-out slices, the way `compare` does, without the full report: what a
Tune trial is scored by."""

from __future__ import annotations

from pathlib import Path

from parallel_r1.compare.heldout import build_heldout, training_prefixes
from parallel_r1.compare.models import BASE, ModelSpec
from parallel_r1.compare.replies import generate_local, prompts_for, sampling_of
from parallel_r1.compare.scoring import score_replies
from parallel_r1.compare.stats import item_means
from parallel_r1.config import EvalConfig, InferenceConfig
from parallel_r1.data.prompts import TUTOR_SYSTEM_PROMPT


def niche_score(eval_cfg: EvalConfig, inference: InferenceConfig, base_model: str, adapter_dir: Path | None,
                slices: list[str], batch_dir: Path, prompts_per_slice: int | None = None,
                system_prompt: str = TUTOR_SYSTEM_PROMPT) -> dict[str, float]:
    """Mean rubric score per slice (and "mean" over their union) of the adapter, or of the base when
    `adapter_dir` is None, on held-out prefixes of `slices` that no training batch holds, prompted with
    `system_prompt`."""
    from transformers import AutoConfig, AutoTokenizer

    from parallel_r1.inference import build_engine

    wanted = [s for s in eval_cfg.slices if s.name in slices]
    cfg = eval_cfg.model_copy(update={"slices": wanted,
                                      "prompts_per_slice": prompts_per_slice or eval_cfg.prompts_per_slice})
    items, _ = build_heldout(cfg, training_prefixes(batch_dir))
    max_len = inference.max_model_len or AutoConfig.from_pretrained(base_model).max_position_embeddings
    prompts = prompts_for(items, AutoTokenizer.from_pretrained(base_model), max_len, cfg.max_tokens, system_prompt)
    spec = ModelSpec("trial", "adapter", str(adapter_dir)) if adapter_dir else ModelSpec(BASE, "base")
    engine = build_engine(inference, base_model, {"trial": Path(adapter_dir)} if adapter_dir else {})
    try:
        replies = generate_local(engine, [spec], items, {spec.name: prompts}, sampling_of(cfg))[spec.name]
        rows = score_replies(items, replies)
    finally:
        engine.close()
    scores = {s: sum(v := list(item_means(rows, spec.name, s).values())) / len(v) for s in slices}
    union = item_means(rows, spec.name)
    scores["mean"] = sum(union.values()) / len(union)
    return scores
