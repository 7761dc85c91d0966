"""A teacher turn with `"weight": 0` is context: the per-turn loss mask keeps it out of the loss whatever the chat
template, on the embedded model and on a real pretrained one whose template knows nothing of weights."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoTokenizer

from parallel_r1.config import FinetuneConfig
from parallel_r1.config.workers import SFTJob
from parallel_r1.finetune.sft import build_trainer
from parallel_r1.finetune.turn_mask import TemplateError, tokenize_with_turn_mask

RECORD = {"messages": [
    {"role": "system", "content": "You are a tutor."},
    {"role": "user", "content": "How do I add 23 and 19?"},
    {"role": "assistant", "content": "The answer is 42.", "weight": 0},
    {"role": "user", "content": "ok but why?"},
    {"role": "assistant", "content": "What do you get when you add the tens first?", "weight": 1},
]}
CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _trainer(tmp_path, base: str, max_length: int = 256):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(RECORD) for _ in range(2)) + "\n")
    ft = FinetuneConfig(epochs=1, max_length=max_length, per_device_batch_size=2)
    return build_trainer(SFTJob.for_batch("b", path, base, ft, 2), str(tmp_path / "out"))


def _trained_text(trainer, row) -> str:
    return trainer.processing_class.decode(
        [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100])


def test_weight_zero_turns_carry_no_loss(tmp_path, tiny_base_model):
    trainer = _trainer(tmp_path, str(tiny_base_model))
    row = trainer.train_dataset[0]
    trained = _trained_text(trainer, row)
    assert "tens first" in trained and "42" not in trained
    assert "<|end|>" in trained  # the end of the turn is trained: the model learns to stop
    assert "42" in trainer.processing_class.decode(row["input_ids"])


def test_a_template_that_ignores_weights_still_masks_them(tmp_path, tiny_base_model):
    tok = AutoTokenizer.from_pretrained(tiny_base_model)
    tok.chat_template = CHATML
    enc = tokenize_with_turn_mask(tok, RECORD["messages"])
    trained = tok.decode([t for t, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True) if m])
    assert "tens first" in trained and "42" not in trained and "ok but why" not in trained
    assert "<|im_end|>" in trained  # the end of the turn is trained


def test_a_template_that_rewrites_earlier_turns_is_refused(tiny_base_model):
    tok = AutoTokenizer.from_pretrained(tiny_base_model)
    # Renders the history in a different form once the conversation goes on, as some reasoning templates do.
    tok.chat_template = ("{% for message in messages %}{% if loop.last %}[{{ message['content'] }}]{% else %}"
                         "{{ message['content'] }}{% endif %}{% endfor %}")
    with pytest.raises(TemplateError, match="prefixes"):
        tokenize_with_turn_mask(tok, RECORD["messages"])


def test_a_turn_past_max_length_is_trained_in_its_own_window(tmp_path, tiny_base_model):
    full = _trainer(tmp_path, str(tiny_base_model)).train_dataset[0]
    trainer = _trainer(tmp_path, str(tiny_base_model), max_length=len(full["input_ids"]) - 4)
    assert trainer.records == len(trainer.train_dataset) == 2  # a window replaced each record: its first part
    # held only the weak turn, which is context
    row = trainer.train_dataset[0]
    assert len(row["input_ids"]) < len(full["input_ids"])
    trained = _trained_text(trainer, row)
    assert "tens first" in trained and "42" not in trained


@pytest.mark.slow
def test_a_weight_zero_turn_contributes_no_loss_on_the_real_model(tmp_path, real_base_model):
    """The trainer's loss on a batch equals the cross-entropy over the weight-1 turn's tokens alone."""
    trainer = _trainer(tmp_path, str(real_base_model))
    assert "weight" not in (trainer.processing_class.chat_template or "")
    row = trainer.train_dataset[0]
    trained = _trained_text(trainer, row)
    assert "tens first" in trained and "42" not in trained and "<|im_end|>" in trained
    batch = trainer.data_collator([row])
    model = trainer.model.eval()
    with torch.no_grad():
        loss = model(**batch).loss
        logits = model(input_ids=batch["input_ids"]).logits[0, :-1]
    targets = batch["labels"][0, 1:]
    keep = targets != -100
    manual = torch.nn.functional.cross_entropy(logits[keep], targets[keep])
    assert torch.allclose(loss, manual, atol=1e-4)
