"""Every model answers the same held-out prefixes with the same sampling seeds; replies are cached per
model under `eval/replies/`, keyed by the held-out set, the sampling settings and the model's weights,
so a rerun (or a resumed, killed one) generates only what is missing or stale."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from pathlib import Path

from parallel_r1.compare.heldout import EvalItem
from parallel_r1.compare.models import ModelSpec
from parallel_r1.config import BatchSpec, EvalConfig, OpenAIEndpointConfig
from parallel_r1.data.context import fit_prompt, token_counter
from parallel_r1.data.io import atomic_write_json, cached_json
from parallel_r1.data.prompts import TUTOR_SYSTEM_PROMPT, served_system_prompt
from parallel_r1.inference.engine import Completion, InferenceEngine, SamplingParams


@dataclass
class Reply:
    model: str
    item_id: str
    sample: int
    text: str
    completion_tokens: int
    finish_reason: str


def sampling_of(cfg: EvalConfig) -> SamplingParams:
    return SamplingParams(n=cfg.samples_per_prompt, temperature=cfg.temperature, top_p=cfg.top_p,
                          max_tokens=cfg.max_tokens, seed=cfg.sampling_seed)


def eval_system_prompt(model: str, cfg: EvalConfig, batches: list[BatchSpec]) -> str:
    """The system prompt `model` is evaluated with (see `eval.system_prompt`)."""
    return TUTOR_SYSTEM_PROMPT if cfg.system_prompt == "generic" else served_system_prompt(model, batches)


def prompts_for(items: list[EvalItem], tokenizer, max_model_len: int, max_tokens: int,
                system_prompt: str = TUTOR_SYSTEM_PROMPT) -> list[list[dict]]:
    count = token_counter(tokenizer)
    return [fit_prompt(i.history, count, max_model_len - max_tokens, system_prompt) for i in items]


def _to_replies(model: str, items: list[EvalItem], completions: list[Completion]) -> list[Reply]:
    return [Reply(model, item.item_id, k, text, (c.completion_tokens or [0] * len(c.texts))[k],
                  (c.finish_reasons or ["stop"] * len(c.texts))[k])
            for item, c in zip(items, completions, strict=True) for k, text in enumerate(c.texts)]


def generate_local(engine: InferenceEngine, specs: list[ModelSpec], items: list[EvalItem],
                   prompts: dict[str, list[list[dict]]], sampling: SamplingParams) -> dict[str, list[Reply]]:
    """Every local model's replies to its prompts for `items` ({model name: prompts}), in one `generate_each`
    call: {model name: replies}."""
    requests = [(prompts[spec.name], spec.name if spec.kind == "adapter" else None) for spec in specs]
    outputs = engine.generate_each(requests, sampling)
    return {spec.name: _to_replies(spec.name, items, out) for spec, out in zip(specs, outputs, strict=True)}


def generate_remote(endpoint: OpenAIEndpointConfig, spec: ModelSpec, items: list[EvalItem],
                    sampling: SamplingParams, system_prompt: str = TUTOR_SYSTEM_PROMPT,
                    concurrency: int = 8) -> list[Reply]:
    """A fine-tuned model behind the OpenAI API (or any compatible endpoint), with retries."""
    from parallel_r1.llm_client import OpenAIChatClient

    cfg = endpoint.model_copy(update={"model": spec.source, "temperature": sampling.temperature,
                                      "max_tokens": sampling.max_tokens})

    async def run() -> list[Reply]:
        gate = asyncio.Semaphore(concurrency)
        async with OpenAIChatClient(cfg, seed=sampling.seed) as client:
            async def one(item: EvalItem, k: int) -> Reply:
                async with gate:
                    prompt = [{"role": "system", "content": system_prompt}, *item.history]
                    text = await client.complete(prompt)
                return Reply(spec.name, item.item_id, k, text, 0, "stop")
            return list(await asyncio.gather(*(one(i, k) for i in items for k in range(sampling.n))))

    return asyncio.run(run())


class ReplyCache:
    """`eval/replies/<model>.json`: one model's replies plus the key they were generated under."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _path(self, model: str) -> Path:
        return self.folder / f"{model.replace(':', '__').replace('/', '_')}.json"

    def get(self, model: str, key: dict) -> list[Reply] | None:
        data = cached_json(self._path(model)) or {}
        return [Reply(**r) for r in data["replies"]] if data.get("key") == key else None

    def put(self, model: str, key: dict, replies: list[Reply]) -> Path:
        return atomic_write_json(self._path(model), {"key": key, "replies": [asdict(r) for r in replies]})
