"""The `base_model` section: the model every specialist starts from, and the embedded tiny model's size and
pre-training."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from parallel_r1.config.base import _Section


class BaseModelConfig(_Section):
    path: str | None = Field(None, description="Any Hugging Face model path or hub id; None: build the embedded "
                                               "tiny model into <workdir>/models/base with `init-model`.")
    source: Literal["smollm2-135m-instruct"] | None = Field(
        None, description="A packaged pretrained model that `init-model` converts into <workdir>/models/base "
                          "(the `real` extra). None: the embedded tiny model, pre-trained here; the size fields "
                          "below apply to it only.")
    hidden_size: int = Field(192, ge=8, description="Embedded model: hidden size.")
    intermediate_size: int = Field(512, ge=8, description="Embedded model: MLP size.")
    num_layers: int = Field(4, ge=1, description="Embedded model: transformer layers.")
    num_heads: int = Field(4, ge=1, description="Embedded model: attention heads.")
    max_seq_len: int = Field(256, ge=32, description="Context length of the embedded model.")
    vocab_size: int = Field(2048, ge=300, description="Target BPE vocabulary (a templated corpus saturates lower).")
    corpus_dialogues: int = Field(3000, ge=10, description="Procedural dialogues generated to pre-train on.")
    max_steps: int | None = Field(350, ge=1, description="Pre-training steps; a step budget keeps the model the same "
                                                        "however busy the machine is (the learning-rate schedule "
                                                        "follows the steps). None: train for train_minutes.")
    train_minutes: float = Field(8.0, gt=0, description="Wall-clock cap of pre-training (stops before max_steps "
                                                        "on a slow or busy machine).")
    batch_size: int = Field(16, ge=1, description="Pre-training sequences per step.")
    learning_rate: float = Field(3e-3, gt=0, description="Peak pre-training learning rate.")
    seed: int = Field(0, description="Seed of the corpus and the initial weights.")
