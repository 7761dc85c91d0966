"""TRL's GRPOTrainer driven by the curriculum, with rollouts through vLLM (colocated, or a server) or HF `generate`.

`CurriculumGRPOTrainer` differs from `GRPOTrainer` only at the start of each generation batch: it turns the
dataset's slots into prompts of the curriculum's current tier and branch count, applies the phase's sampling
(temperature, token budget) to whichever rollout backend runs, and sets the reward weights of the step from the
`RewardSchedule`. The reward components are passed to TRL as separate reward functions, so TRL logs each one's
mean (`rewards/<name>/mean`) whatever its weight; both backends score with the same functions. Timers split each
step into generation, reward, weight sync and update. No Ray here: `grpo_worker` runs this on Ray Train.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from trl import GRPOConfig, GRPOTrainer

from parallel_r1.data.parallel_format import parse_reply
from parallel_r1.finetune.sft import bf16_mixed
from parallel_r1.rl.curriculum import Curriculum, PhaseSettings
from parallel_r1.rl.rewards import COMPONENTS, RewardSchedule, completion_text


class StepTimers:
    """Seconds spent per named section since the last `take()`."""

    def __init__(self) -> None:
        self._totals: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def time(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self._totals[name] += time.perf_counter() - started

    def take(self) -> dict[str, float]:
        out, self._totals = dict(self._totals), defaultdict(float)
        return out


@dataclass
class Rollout:
    """What one generation batch was sampled and scored under, and what it scored (gathered over workers)."""

    tier: str
    phase: PhaseSettings
    weights: dict[str, float]
    sample_rewards: list[float] = field(default_factory=list)
    format_adherence: float | None = None
    completion_tokens: int = 0


def grpo_args(rl, output_dir: str, *, backend: str, max_model_len: int, use_gpu: bool, world_size: int,
              first_phase: PhaseSettings, save: bool = True) -> GRPOConfig:
    """The GRPOConfig of a run (`rl` is an `RLConfig`): one optimizer step per generation batch; gradient
    checkpointing (TRL's default) only on GPU, where it saves memory: on CPU it only recomputes the forward."""
    rollouts = rl.prompts_per_step * rl.num_generations
    if rollouts % world_size:
        raise ValueError(f"rl.prompts_per_step x rl.num_generations = {rollouts} rollouts per step must divide by "
                         f"rl.num_workers = {world_size}")
    vllm = {}
    if backend == "vllm":
        vllm = {"use_vllm": True, "vllm_mode": rl.vllm_mode, "vllm_max_model_length": max_model_len,
                "vllm_gpu_memory_utilization": rl.vllm_gpu_memory_utilization,
                # logprobs are taken at the base temperature while each phase samples at its own: no correction
                "vllm_importance_sampling_correction": False}
        if rl.vllm_mode == "server":
            vllm["vllm_server_base_url"] = rl.vllm_server_url
    return GRPOConfig(
        output_dir=output_dir, max_steps=rl.max_steps, learning_rate=rl.learning_rate, lr_scheduler_type="constant",
        per_device_train_batch_size=rollouts // world_size, gradient_accumulation_steps=1,
        num_generations=rl.num_generations, temperature=first_phase.temperature, top_p=rl.top_p,
        max_completion_length=max(rl.explore.max_tokens, rl.verify.max_tokens), beta=rl.beta,
        logging_steps=1, save_strategy="steps" if save else "no", save_steps=rl.save_steps, save_total_limit=2,
        report_to="none", use_cpu=not use_gpu, bf16=bf16_mixed(use_gpu), gradient_checkpointing=use_gpu, seed=rl.seed,
        disable_tqdm=True, dataloader_num_workers=0, log_completions=False, **vllm)


class CurriculumGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose prompts, sampling and reward weights follow a `Curriculum` and a `RewardSchedule`."""

    def __init__(self, *args, prompts, curriculum: Curriculum, schedule: RewardSchedule, max_blocks: int,
                 **kwargs):
        self.prompts, self.curriculum, self.schedule = prompts, curriculum, schedule
        self.max_blocks = max_blocks
        self.timers = StepTimers()
        self.rollout: Rollout | None = None
        super().__init__(*args, **kwargs)
        if self.use_vllm:
            sync = self.vllm_generation.sync_weights
            if self.vllm_mode == "colocate" and not torch.cuda.is_available():
                sync = self._reload_cpu_engine_weights

            def timed_sync() -> None:
                with self.timers.time("weight_sync"):
                    sync()

            self.vllm_generation.sync_weights = timed_sync

    def _reload_cpu_engine_weights(self) -> None:
        """Weight sync for a colocated vLLM on CPU: its linear layers keep only kernel-packed weights, which TRL's
        per-parameter `load_weights` cannot reach; vLLM's in-place reload loads and re-packs them. A head tied to
        the embeddings keeps its own packed copy, which the reload leaves stale: every vocabulary layer is re-packed."""
        from vllm.model_executor.layers.vocab_parallel_embedding import VocabParallelEmbedding

        vg = self.vllm_generation
        runner = vg.llm.llm_engine.model_executor.driver_worker.model_runner
        runner.reload_weights(weights_iterator=vg._iter_named_params(), is_checkpoint_format=True)
        for module in runner.get_model().modules():
            if isinstance(module, VocabParallelEmbedding):  # ParallelLMHead is one
                module.quant_method.process_weights_after_loading(module)
        vg.llm.reset_prefix_cache()

    def _apply_phase(self, phase: PhaseSettings) -> None:
        if self.use_vllm:
            self.vllm_generation.temperature = phase.temperature
            self.vllm_generation.max_completion_length = phase.max_tokens
        else:
            self.generation_config.temperature = phase.temperature
            self.generation_config.max_new_tokens = phase.max_tokens

    def _generate_and_score_completions(self, inputs):
        if not self.model.training:
            return super()._generate_and_score_completions(inputs)
        tier, phase = self.curriculum.tier, self.curriculum.phase
        weights = self.schedule.weights_at(self.state.global_step + 1)
        self.reward_weights = torch.tensor([weights.get(c, 0.0) for c in COMPONENTS], dtype=torch.float32)
        self._apply_phase(phase)
        self.rollout = Rollout(tier, phase, weights)
        inputs = [{**x, **self.prompts.row(x["slot"], tier, phase.branches)} for x in inputs]
        return super()._generate_and_score_completions(inputs)

    def _generate(self, prompts):
        with self.timers.time("generate"):
            out = super()._generate(prompts)
        if self.rollout is not None:
            self.rollout.completion_tokens += int(sum(len(ids) for ids in out[1]))
        return out

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        with self.timers.time("reward"):
            per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            if self.rollout is not None:
                totals = (per_func * self.reward_weights.to(per_func.device).unsqueeze(0)).nansum(dim=1)
                self.rollout.sample_rewards = totals.tolist()
                ok = sum(parse_reply(completion_text(c), max_blocks=self.max_blocks).uses_parallel
                         for c in completions)
                stats = torch.tensor([float(ok), float(len(completions))], device=per_func.device)
                hits, n = self.accelerator.gather(stats).view(-1, 2).sum(dim=0).tolist()
                self.rollout.format_adherence = hits / n if n else None
        return per_func

    def step_timings(self, step_s: float) -> dict[str, float]:
        """The step's time split into generation (without weight sync), reward, weight sync and the rest (update:
        log-probs, backward, optimizer)."""
        t = self.timers.take()
        sync = t.get("weight_sync", 0.0)
        generation = t.get("generate", 0.0) - sync
        reward = t.get("reward", 0.0)
        return {"generation_s": generation, "reward_s": reward, "weight_sync_s": sync,
                "update_s": max(0.0, step_s - generation - reward - sync), "step_s": step_s}
