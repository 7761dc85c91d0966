"""Pre-training the embedded base model from scratch: a small Llama, whole-dialogue batches, linear warm-up then
cosine decay over a step budget (or the wall clock), on as many CPU threads as the machine can spare."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Iterator

import torch
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from parallel_r1.config import BaseModelConfig
from parallel_r1.console import console

SAMPLING = {"do_sample": True, "temperature": 0.8, "top_p": 0.95, "max_new_tokens": 160}
WARMUP_STEPS = 10
MIN_LR_FACTOR = 0.1  # cosine decay ends at this fraction of the peak learning rate
LENGTH_POOL_BATCHES = 32  # dialogues are sorted by length within pools of this many batches
LOG_EVERY = 5  # steps between points of the saved loss curve (and progress bar updates)


def _busy_cores(sample_s: float = 0.5) -> float:
    """Cores busy right now, from /proc/stat over `sample_s` (the 1-minute load average where it cannot be read:
    that one still counts work which has just finished)."""
    def read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all jiffies, idle + iowait

    try:
        total0, idle0 = read()
        time.sleep(sample_s)
        total1, idle1 = read()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0]
    return os.cpu_count() * (1 - (idle1 - idle0) / max(1, total1 - total0))


def default_num_threads() -> int:
    """Every core when no other work is running, else one left free: measured on 2 cores, 2 threads trained
    1.45–1.7x faster than 1 on an idle machine but 2–3x slower than 1 beside another job."""
    cores = len(os.sched_getaffinity(0))
    spare = 0 if _busy_cores() < 0.5 else 1
    return max(1, min(8, cores - spare))


def _batches(docs: list[list[int]], cfg: BaseModelConfig, pad_id: int) -> Iterator[dict[str, torch.Tensor]]:
    """Endless batches of whole dialogues, so every reply sees its own conversation from the start and never
    another one; each epoch reshuffles and groups similar lengths to keep padding low."""
    rng = random.Random(cfg.seed)
    pool = cfg.batch_size * LENGTH_POOL_BATCHES
    while True:
        order = rng.sample(range(len(docs)), len(docs))
        groups = []
        for start in range(0, len(order), pool):
            chunk = sorted(order[start:start + pool], key=lambda i: len(docs[i]))
            groups += [chunk[k:k + cfg.batch_size] for k in range(0, len(chunk), cfg.batch_size)]
        rng.shuffle(groups)
        for group in groups:
            ids = torch.full((len(group), max(len(docs[i]) for i in group)), pad_id)
            mask = torch.zeros_like(ids)
            for row, i in enumerate(group):
                ids[row, : len(docs[i])] = torch.tensor(docs[i])
                mask[row, : len(docs[i])] = 1
            yield {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def _progress(steps: int, elapsed_s: float, cfg: BaseModelConfig) -> tuple[float, bool]:
    """(how far the learning-rate schedule is, whether to stop). With max_steps the schedule follows the steps
    alone, so a step budget gives the same model however slow or busy the machine is, and train_minutes only
    stops a run early; without, it follows the wall clock."""
    by_time = elapsed_s / (cfg.train_minutes * 60)
    if cfg.max_steps:
        return steps / cfg.max_steps, steps >= cfg.max_steps or by_time >= 1.0
    return by_time, by_time >= 1.0


def _lr_factor(step: int, progress: float) -> float:
    """Linear warm-up, then cosine decay over the run's progress (see `_progress`)."""
    cosine = MIN_LR_FACTOR + (1 - MIN_LR_FACTOR) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return min(1.0, (step + 1) / WARMUP_STEPS) * cosine


def new_model(cfg: BaseModelConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_seq_len, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        **SAMPLING, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


def pretrain(model: LlamaForCausalLM, docs: list[list[int]], pad_id: int, cfg: BaseModelConfig,
              progress: bool) -> dict:
    """Train until cfg.train_minutes (or cfg.max_steps) is reached; returns the training metrics."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.learning_rate, betas=(0.9, 0.95))
    batches = _batches(docs, cfg, pad_id)
    losses: list[float] = []
    tokens_seen = 0
    curve: list[tuple[int, float]] = []
    bar = Progress(TextColumn("[bold]pre-train"), BarColumn(), TaskProgressColumn(),
                   TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console, disable=not progress)
    model.train()
    started = time.perf_counter()
    with bar:
        task = bar.add_task("pre-train", total=1.0, status="")
        frac, done = 0.0, False
        while not done:
            for group in opt.param_groups:
                group["lr"] = cfg.learning_rate * _lr_factor(len(losses), frac)
            batch = next(batches)
            loss = model(**batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            tokens_seen += int(batch["attention_mask"].sum())
            elapsed = time.perf_counter() - started
            frac, done = _progress(len(losses), elapsed, cfg)
            if len(losses) % LOG_EVERY == 0 or done:
                curve.append((len(losses), round(sum(losses[-LOG_EVERY:]) / len(losses[-LOG_EVERY:]), 4)))
                tps = tokens_seen / elapsed
                bar.update(task, completed=min(frac, 1.0),
                           status=f"step {len(losses)}  loss {curve[-1][1]:.3f}  {tps:,.0f} tok/s")
    train_s = time.perf_counter() - started
    tail = losses[-max(1, min(10, len(losses) // 10)):]
    return {"steps": len(losses), "tokens_seen": tokens_seen, "tokens_per_s": tokens_seen / train_s,
            "first_loss": losses[0], "final_loss": sum(tail) / len(tail), "train_s": train_s, "loss_curve": curve}
