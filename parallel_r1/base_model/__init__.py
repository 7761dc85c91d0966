"""`parallel-r1 init-model`: the base model every stage starts from: a small Llama pre-trained from scratch on
procedural dialogues (with its own tokenizer), or a packaged pretrained model converted to a standard checkpoint."""
