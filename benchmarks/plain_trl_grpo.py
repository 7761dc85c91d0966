"""The peer of bench_grpo.py: the GRPO a user would write instead of `parallel-r1 rl`, TRL's `GRPOTrainer` and
`GRPOConfig` in one plain Python process (no Ray), with HF `generate` rollouts, the prompts of parallel-r1's prompt
builder (`parallel_r1.rl.prompts`; the rl defaults' first tier, explore branch count and block limit) and its four
reward callables with the default weights. A `TrainerCallback` times each step (on_step_begin to on_step_end); the
script writes the step times, each step's mean reward, the process's CPU seconds at the end of each step and the
wall-clock time at which the first step began as JSON to `--out` (or stdout).

Run: `python benchmarks/plain_trl_grpo.py MODEL [--steps 6] [--prompts 2] [--group 4] [--max-tokens 64]
[--lr 1e-5] [--prompt-pool 16] [--threads 1] [--seed 0] [--out FILE]`; MODEL is a causal LM with the Parallel tags
(bench_grpo.py passes the one it benchmarks).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from parallel_r1.rl.prompts import CurriculumPrompts  # noqa: E402
from parallel_r1.rl.rewards import ConsistencyReward, DiversityReward, FormatReward, RubricReward  # noqa: E402

TIER, BRANCHES, MAX_BLOCKS = "easy", 4, 3
REWARD_WEIGHTS = [1.0, 0.2, 0.2, 0.5]  # rubric, diversity, consistency, format


class StepTimer(TrainerCallback):
    """Each step's seconds, mean reward and CPU seconds at its end, and the wall-clock time the first step began."""

    def __init__(self) -> None:
        self.steps: list[float] = []
        self.rewards: list[float] = []  # each step's mean reward (bench_grpo checks ours drew the same rollouts)
        self.first_step_began: float | None = None
        self.cpu_s: list[float] = []  # this process's CPU seconds at the end of each step
        self._began = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._began = time.perf_counter()
        if self.first_step_began is None:
            self.first_step_began = time.time()

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(time.perf_counter() - self._began)
        self.cpu_s.append(time.process_time())

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "reward" in logs:
            self.rewards.append(logs["reward"])


def grpo_config(args, output_dir: str) -> GRPOConfig:
    return GRPOConfig(
        output_dir=output_dir, max_steps=args.steps, learning_rate=args.lr, lr_scheduler_type="constant",
        per_device_train_batch_size=args.prompts * args.group, num_generations=args.group, temperature=1.0,
        top_p=0.95, max_completion_length=args.max_tokens, beta=0.0, reward_weights=REWARD_WEIGHTS, logging_steps=1,
        save_strategy="no", report_to="none", use_cpu=True, bf16=False, gradient_checkpointing=False, seed=args.seed,
        disable_tqdm=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--prompts", type=int, default=2, help="prompts per step")
    ap.add_argument("--group", type=int, default=4, help="rollouts per prompt (num_generations)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--prompt-pool", type=int, default=16, help="prompts in the dataset")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)

    def count_tokens(messages: list[dict]) -> int:
        return len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)["input_ids"])

    budget = AutoConfig.from_pretrained(args.model).max_position_embeddings - args.max_tokens
    prompts = CurriculumPrompts([TIER], args.prompt_pool, args.seed, MAX_BLOCKS, count_tokens, budget)
    dataset = Dataset.from_list([{k: row[k] for k in ("prompt", "scenario_id", "profile_kind")}
                                 for row in (prompts.row(slot, TIER, BRANCHES) for slot in range(args.prompt_pool))])
    timer = StepTimer()
    rewards = [RubricReward(max_blocks=MAX_BLOCKS), DiversityReward(max_blocks=MAX_BLOCKS),
               ConsistencyReward(max_blocks=MAX_BLOCKS), FormatReward(max_blocks=MAX_BLOCKS)]
    with tempfile.TemporaryDirectory() as output_dir:
        GRPOTrainer(model=model, args=grpo_config(args, output_dir), train_dataset=dataset, processing_class=tokenizer,
                    reward_funcs=rewards, callbacks=[timer]).train()
    result = json.dumps({"step_s": timer.steps, "reward": timer.rewards, "cpu_s": timer.cpu_s,
                         "first_step_began": timer.first_step_began})
    if args.out:
        args.out.write_text(result)
    else:
        print(result)


if __name__ == "__main__":
    main()
