"""Tiny full models in the Parallel-R1 format (tests): the base with the format's tags, trained to give one reply."""

from __future__ import annotations

from pathlib import Path

PROMPTS = ("Why does my loop skip the first item?", "hi", "What is a loop?", "I am lost")


def parallel_model(base: Path, out: Path, reply: str | None = None, steps: int = 100) -> Path:
    """`base` exported as a Parallel-R1 model (tags added, 512-token context) to `out`; with `reply`, trained until
    its greedy answer to any prompt, with or without the parallel instruction, is `reply` (~3 s)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from parallel_r1.finetune.parallel_tokens import export_parallel_model
    from parallel_r1.inference.policy import ParallelExecutionPolicy

    export_parallel_model(base, out, context=512)
    if reply is None:
        return out
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    system = [{"role": "system", "content": ParallelExecutionPolicy().instruction()}]
    target = tokenizer(reply + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    rows = []
    for prompt in PROMPTS:
        for conversation in ([*system, {"role": "user", "content": prompt}], [{"role": "user", "content": prompt}]):
            text = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
            rows.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    width = max(len(p) for p in rows) + len(target)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    labels, mask = torch.full_like(ids, -100), torch.zeros_like(ids)
    for i, prompt in enumerate(rows):
        end = len(prompt) + len(target)
        ids[i, :end] = torch.tensor(prompt + target)
        labels[i, len(prompt):end] = torch.tensor(target)
        mask[i, :end] = 1
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
    model.save_pretrained(out)
    return out
