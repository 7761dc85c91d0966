"""The embedded base model (`parallel-r1 init-model`): a small Llama pre-trained from scratch on procedural
tutoring dialogues, so the demo fine-tunes and grades a model that writes real text, with no model hub.

The build goes to a temporary sibling folder renamed into place when complete; a folder that already holds
a model built with the same configuration is kept as it is.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import torch
import transformers

from parallel_r1.base_model.from_scratch import default_num_threads, new_model, pretrain
from parallel_r1.base_model.pretrained import convert_packaged
from parallel_r1.base_model.tokenizer import train_tokenizer
from parallel_r1.config import BaseModelConfig, ConfigError
from parallel_r1.console import console, notice, summary_table
from parallel_r1.data import Dialogue, discovery_plan
from parallel_r1.data.io import atomic_write_json, cached_json, folder_build
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.simulator import simulate_dialogue
from parallel_r1.errors import UserFacingError
from parallel_r1.paths import BASE_MODEL_INFO
from parallel_r1.recipe import run_recipe

log = logging.getLogger(__name__)

BUILDER_VERSION = 2  # bump when the corpus, tokenizer or template change, so older builds are rebuilt
CORPUS_SEED_OFFSET = 7000  # corpus plan seed = this + cfg.seed: ids "d7000-…" never collide with discover's
SYSTEM_PROMPTS = (  # a third of the corpus gets one, so the base knows the system role before SFT uses it
    "You are a patient tutor.",
    "You are a tutor: help the student understand, step by step.",
    "Teach the student; ask questions and check their understanding.",
)


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
    info = cached_json(out_dir / BASE_MODEL_INFO)
    if info is None or info.get("config") != _build_key(cfg):
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


def build_base_model(cfg: BaseModelConfig, out_dir: Path, *, progress: bool = True, force: bool = False,
                     num_threads: int | None = None) -> BaseModelResult:
    """Build the embedded base model into out_dir (kept as it is when already built with this config).

    num_threads: torch CPU threads during the build (None: `default_num_threads()`); restored afterwards.
    """
    out_dir = Path(out_dir).resolve()
    if not force and (done := _existing(out_dir, cfg)) is not None:
        if progress:
            notice(f"base model in {out_dir} is up to date (same configuration); skipped", log)
        return done
    if out_dir.exists() and not (out_dir / BASE_MODEL_INFO).exists() and not force:
        raise UserFacingError(f"{out_dir} exists but holds no embedded base model ({BASE_MODEL_INFO} missing): "
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
            model = new_model(cfg, tokenizer)
            torch.set_num_threads(num_threads or default_num_threads())  # decided now: the corpus work has ended
            if progress:
                console.print(f"pre-training on {torch.get_num_threads()} CPU thread(s)")
            train = pretrain(model, docs, tokenizer.pad_token_id, cfg, progress)
            model.eval()
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            result = BaseModelResult(
                path=out_dir, skipped=False, params=model.num_parameters(), vocab_size=len(tokenizer),
                corpus_dialogues=len(conversations), corpus_tokens=corpus_tokens,
                **{k: v for k, v in train.items() if k != "loss_curve"}, wall_s=time.perf_counter() - started,
            )
            atomic_write_json(tmp / BASE_MODEL_INFO, {
                "config": _build_key(cfg), "metrics": result.metrics(), "loss_curve": train["loss_curve"],
                "corpus": {"dialogues": len(conversations), "plan_seed": CORPUS_SEED_OFFSET + cfg.seed,
                           "tokens": corpus_tokens},
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            })
    finally:
        torch.set_num_threads(threads)
    if progress:
        notice(summary_table("base model", ["", "value"], _summary_rows(result)), log)
    return result


def _summary_rows(r: BaseModelResult) -> list[tuple]:
    return [
        ("path", str(r.path)), ("parameters", f"{r.params:,}"), ("vocabulary", r.vocab_size),
        ("corpus", f"{r.corpus_dialogues:,} dialogues, {r.corpus_tokens:,} tokens"),
        ("steps", r.steps), ("tokens seen", f"{r.tokens_seen:,} ({r.tokens_seen / r.corpus_tokens:.2f} epochs)"),
        ("tokens/s", f"{r.tokens_per_s:,.0f}"), ("loss", f"{r.first_loss:.3f} -> {r.final_loss:.3f}"),
        ("wall time", f"{r.wall_s:.1f} s (training {r.train_s:.1f} s)"),
    ]


@dataclass(frozen=True)
class InitModelResult:
    """Where the base model is, whether an existing one was kept, and what was packaged into it (None: embedded)."""

    path: Path
    skipped: bool
    source: str | None = None


class InitModelStage:
    """setup() → run() → cleanup(): `init-model` converts the packaged pretrained model `base_model.source` names,
    or builds the embedded one, into `out_dir`."""

    def __init__(self, cfg: BaseModelConfig, out_dir: Path, *, progress: bool = True, force: bool = False):
        self.cfg, self.out_dir, self.progress, self.force = cfg, out_dir, progress, force

    def setup(self) -> None:
        """Nothing to prepare: the build checks the folder itself."""

    def run(self) -> InitModelResult:
        if self.cfg.source:
            info = convert_packaged(self.cfg.source, self.out_dir, progress=self.progress, force=self.force)
            return InitModelResult(Path(self.out_dir).resolve(), info["skipped"], self.cfg.source)
        built = build_base_model(self.cfg, self.out_dir, progress=self.progress, force=self.force)
        return InitModelResult(built.path, built.skipped)

    def cleanup(self) -> None:
        """Nothing to release: the build cleans up its temporary folder."""


def init_base_model(cfg: BaseModelConfig, out_dir: Path, *, progress: bool = True,
                    force: bool = False) -> InitModelResult:
    return run_recipe(InitModelStage(cfg, out_dir, progress=progress, force=force))
