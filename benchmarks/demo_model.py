"""The base models the benchmarks time: the demo-size embedded model (the demo's architecture after a few
pre-training steps: the cost of a token does not depend on how well the model is trained), or a packaged real
pretrained one (`--model smollm2-135m-instruct`), the size users run."""

from __future__ import annotations

from pathlib import Path

from parallel_r1.base_model.pretrained import PACKAGED, convert_packaged
from parallel_r1.base_model.stage import build_base_model
from parallel_r1.config import BaseModelConfig

DEMO_SIZE = BaseModelConfig(hidden_size=192, intermediate_size=512, num_layers=4, num_heads=4, max_seq_len=256,
                            vocab_size=2048, corpus_dialogues=300, max_steps=5)
MODELS = ("demo", *PACKAGED)


def build_demo_size_model(folder: Path):
    """Build it into `folder` (a loadable model + tokenizer); returns build_base_model's result."""
    return build_base_model(DEMO_SIZE, folder, progress=False)


def bench_model(name: str, folder: Path) -> int:
    """Put the model `name` (one of MODELS) into `folder`; its parameter count."""
    if name == "demo":
        return build_demo_size_model(folder).params
    return convert_packaged(name, folder, progress=False)["metrics"]["params"]
