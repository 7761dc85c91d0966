"""A teacher turn with `"weight": 0` is context: the embedded template and TRL's processed dataset keep it out of
the loss; a template that cannot do that is refused rather than silently training the turn."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from parallel_r1.config import FinetuneConfig
from parallel_r1.train.launcher import job_config
from parallel_r1.train.sft import build_trainer

RECORD = {"messages": [
    {"role": "system", "content": "You are a tutor."},
    {"role": "user", "content": "How do I add 23 and 19?"},
    {"role": "assistant", "content": "The answer is 42.", "weight": 0},
    {"role": "user", "content": "ok but why?"},
    {"role": "assistant", "content": "What do you get when you add the tens first?", "weight": 1},
]}


def _trainer(tmp_path, base: str, max_length: int = 256):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(RECORD) for _ in range(2)) + "\n")
    ft = FinetuneConfig(epochs=1, max_length=max_length, per_device_batch_size=2)
    return build_trainer(job_config("b", path, base, ft, 2), str(tmp_path / "out"))


def test_weight_zero_turns_carry_no_loss(tmp_path, tiny_base_model):
    trainer = _trainer(tmp_path, str(tiny_base_model))
    tok = trainer.processing_class
    row = trainer.train_dataset[0]
    trained = tok.decode([t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100])
    assert "tens first" in trained and "42" not in trained
    assert "42" in tok.decode(row["input_ids"])


def test_a_template_that_ignores_weights_is_refused(tmp_path, tiny_base_model):
    tok = AutoTokenizer.from_pretrained(tiny_base_model)
    tok.chat_template = tok.chat_template.replace("message['weight']", "message['content']")
    tok.save_pretrained(tmp_path / "model")
    for f in tiny_base_model.iterdir():
        if not (tmp_path / "model" / f.name).exists():
            (tmp_path / "model" / f.name).symlink_to(f)
    with pytest.raises(ValueError, match="ignores per-message weights"):
        _trainer(tmp_path, str(tmp_path / "model"))


def test_a_turn_past_max_length_is_trained_in_its_own_window(tmp_path, tiny_base_model):
    full = _trainer(tmp_path, str(tiny_base_model)).train_dataset[0]
    trainer = _trainer(tmp_path, str(tiny_base_model), max_length=len(full["input_ids"]) - 4)
    assert trainer.records == len(trainer.train_dataset) == 2  # a window replaced each record: its first part
    # held only the weak turn, which is context
    tok = trainer.processing_class
    row = trainer.train_dataset[0]
    assert len(row["input_ids"]) < len(full["input_ids"])
    trained = tok.decode([t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100])
    assert "tens first" in trained and "42" not in trained
