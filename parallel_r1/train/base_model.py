"""The embedded base model (`parallel-r1 init-model`): a small Llama pre-trained from scratch on procedural
tutoring dialogues, so the demo fine-tunes and grades a model that writes real text, with no model hub.

The build goes to a temporary sibling folder renamed into place when complete; a folder that already holds
a model built with the same configuration is kept as it is.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import torch
import transformers
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from parallel_r1.config import BaseModelConfig, ConfigError
from parallel_r1.console import console, summary_table
from parallel_r1.data import Dialogue, discovery_plan
from parallel_r1.data.io import atomic_write_json, folder_build
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.simulator import simulate_dialogue
from parallel_r1.errors import UserFacingError
from parallel_r1.paths import RunPaths
from parallel_r1.train.pretrained import convert_packaged
from parallel_r1.train.tokenizer import train_tokenizer

INFO_FILE = "base_model.json"
BUILDER_VERSION = 2  # bump when the corpus, tokenizer or template change, so older builds are rebuilt
CORPUS_SEED_OFFSET = 7000  # corpus plan seed = this + cfg.seed: ids "d7000-…" never collide with discover's
SYSTEM_PROMPTS = (  # a third of the corpus gets one, so the base knows the system role before SFT uses it
    "You are a patient tutor.",
    "You are a tutor: help the student understand, step by step.",
    "Teach the student; ask questions and check their understanding.",
)
SAMPLING = {"do_sample": True, "temperature": 0.8, "top_p": 0.95, "max_new_tokens": 160}
WARMUP_STEPS = 10
MIN_LR_FACTOR = 0.1  # cosine decay ends at this fraction of the peak learning rate
LENGTH_POOL_BATCHES = 32  # dialogues are sorted by length within pools of this many batches
LOG_EVERY = 5  # steps between points of the saved loss curve (and progress bar updates)


@dataclass
class BaseModelResult:
    path: Path
    skipped: bool  # True: an existing build with the same configuration was kept
    params: int
    vocab_size: int
    corpus_dialogues: int
    corpus_tokens: int
    steps: int
    tokens_seen: int
    tokens_per_s: float
    first_loss: float
    final_loss: float
    train_s: float  # the pre-training loop
    wall_s: float  # the whole build: corpus, tokenizer, training, saving

    def metrics(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("path", "skipped")}


def _build_key(cfg: BaseModelConfig) -> dict:
    return {"builder_version": BUILDER_VERSION, **cfg.model_dump(exclude={"path"})}


def _existing(out_dir: Path, cfg: BaseModelConfig) -> BaseModelResult | None:
    """The recorded result when out_dir holds a complete build of this configuration."""
    info_path = out_dir / INFO_FILE
    if not info_path.exists():
        return None
    info = json.loads(info_path.read_text())
    if info.get("config") != _build_key(cfg):
        return None
    names = {f.name for f in fields(BaseModelResult)}
    return BaseModelResult(path=out_dir, skipped=True, **{k: v for k, v in info["metrics"].items() if k in names})


def generate_corpus(n: int, seed: int) -> list[Dialogue]:
    """n procedural dialogues over every card and profile, from a plan seed of their own."""
    plan_seed = CORPUS_SEED_OFFSET + seed
    backend = ProceduralBackend(plan_seed)

    async def simulate_all() -> list[Dialogue]:
        return [await simulate_dialogue(backend, task) for task in discovery_plan(n, True, plan_seed)]

    return asyncio.run(simulate_all())


def corpus_messages(dialogues: list[Dialogue], seed: int) -> list[list[dict]]:
    rng = random.Random(f"base-corpus:{seed}")
    return [d.messages(system=rng.choice(SYSTEM_PROMPTS) if rng.random() < 1 / 3 else None) for d in dialogues]


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


def _new_model(cfg: BaseModelConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
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


def _pretrain(model: LlamaForCausalLM, docs: list[list[int]], pad_id: int, cfg: BaseModelConfig,
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


def build_base_model(cfg: BaseModelConfig, out_dir: Path, *, progress: bool = True, force: bool = False,
                     num_threads: int | None = None) -> BaseModelResult:
    """Build the embedded base model into out_dir (kept as it is when already built with this config).

    num_threads: torch CPU threads during the build (None: `default_num_threads()`); restored afterwards.
    """
    out_dir = Path(out_dir).resolve()
    if not force and (done := _existing(out_dir, cfg)) is not None:
        if progress:
            console.print(f"base model in {out_dir} is up to date (same configuration); skipped")
        return done
    if out_dir.exists() and not (out_dir / INFO_FILE).exists() and not force:
        raise UserFacingError(f"{out_dir} exists but holds no embedded base model ({INFO_FILE} missing): "
                              "remove it, or rebuild with force")
    if cfg.hidden_size % cfg.num_heads:
        raise ConfigError(f"base_model.hidden_size ({cfg.hidden_size}) must be a multiple of "
                          f"base_model.num_heads ({cfg.num_heads})")
    started = time.perf_counter()
    threads = torch.get_num_threads()
    try:
        with folder_build(out_dir) as tmp:
            if progress:
                console.print(f"generating {cfg.corpus_dialogues} procedural dialogues and training the tokenizer…")
            conversations = corpus_messages(generate_corpus(cfg.corpus_dialogues, cfg.seed), cfg.seed)
            tokenizer = train_tokenizer((m["content"] for c in conversations for m in c), cfg.vocab_size,
                                        cfg.max_seq_len)
            texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
            # Cut at the context length (as SFT does later): the start of a dialogue is what replies condition on.
            docs = [d[: cfg.max_seq_len] for d in tokenizer(texts, verbose=False)["input_ids"]]
            corpus_tokens = sum(map(len, docs))
            model = _new_model(cfg, tokenizer)
            torch.set_num_threads(num_threads or default_num_threads())  # decided now: the corpus work has ended
            if progress:
                console.print(f"pre-training on {torch.get_num_threads()} CPU thread(s)")
            train = _pretrain(model, docs, tokenizer.pad_token_id, cfg, progress)
            model.eval()
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            result = BaseModelResult(
                path=out_dir, skipped=False, params=model.num_parameters(), vocab_size=len(tokenizer),
                corpus_dialogues=len(conversations), corpus_tokens=corpus_tokens,
                **{k: v for k, v in train.items() if k != "loss_curve"}, wall_s=time.perf_counter() - started,
            )
            atomic_write_json(tmp / INFO_FILE, {
                "config": _build_key(cfg), "metrics": result.metrics(), "loss_curve": train["loss_curve"],
                "corpus": {"dialogues": len(conversations), "plan_seed": CORPUS_SEED_OFFSET + cfg.seed,
                           "tokens": corpus_tokens},
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            })
    finally:
        torch.set_num_threads(threads)
    if progress:
        console.print(summary_table("base model", ["", "value"], _summary_rows(result)))
    return result


def _summary_rows(r: BaseModelResult) -> list[tuple]:
    return [
        ("path", str(r.path)), ("parameters", f"{r.params:,}"), ("vocabulary", r.vocab_size),
        ("corpus", f"{r.corpus_dialogues:,} dialogues, {r.corpus_tokens:,} tokens"),
        ("steps", r.steps), ("tokens seen", f"{r.tokens_seen:,} ({r.tokens_seen / r.corpus_tokens:.2f} epochs)"),
        ("tokens/s", f"{r.tokens_per_s:,.0f}"), ("loss", f"{r.first_loss:.3f} -> {r.final_loss:.3f}"),
        ("wall time", f"{r.wall_s:.1f} s (training {r.train_s:.1f} s)"),
    ]


def init_base_model(cfg: BaseModelConfig, out_dir: Path, *, progress: bool = True, force: bool = False) -> None:
    """`init-model`: convert the packaged pretrained model `cfg.source` names, or build the embedded one."""
    if cfg.source:
        convert_packaged(cfg.source, out_dir, progress=progress, force=force)
    else:
        build_base_model(cfg, out_dir, progress=progress, force=force)


def resolve_base_model(cfg: BaseModelConfig, paths: RunPaths) -> str:
    """What to load as the base model: cfg.path when set (any HF path or hub id), else the embedded model."""
    if cfg.path:
        return cfg.path
    path = paths.base_model
    if not (path / INFO_FILE).exists():
        raise FileNotFoundError(f"no base model in {path}: run `parallel-r1 init-model` first "
                                "(or set base_model.path to a Hugging Face model path or hub id)")
    return str(path)
