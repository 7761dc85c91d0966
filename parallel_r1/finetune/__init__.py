"""`parallel-r1 finetune`: one LoRA SFT job per specialist batch, on Ray Train (TRL + PEFT) or the OpenAI fine-tuning
API, tracked in one manifest; `parallel-r1 watch` and `parallel-r1 check` follow and report those jobs."""
