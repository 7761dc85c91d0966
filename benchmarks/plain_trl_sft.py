"""The peer of bench_finetune: one LoRA SFT job as a user would write it without parallel-r1, TRL's `SFTTrainer` with
a PEFT `LoraConfig`, nothing else. Loss on the assistant turns only (`assistant_only_loss`, through the chat
template's `{% generation %}` markers, which leave out turns with `"weight": 0`); an example longer than
`--max-length` is cut (parallel-r1 instead gives each cut-off teacher turn its own window; bench_finetune.py hands
this script those windows, so that both train the same examples).

Run: `python benchmarks/plain_trl_sft.py --base-model DIR --train-file BATCH.jsonl --output-dir DIR [--epochs 3]
[--learning-rate 4e-3] [--batch-size 4] [--max-length 256] [--lora-r 16] [--lora-alpha 32] [--lora-dropout 0]
[--target-modules all-linear] [--save-steps 10] [--threads 1] [--metrics FILE]`. Trains, saves the adapter into
`--output-dir` and, with `--metrics`, writes its timings and token counts there as JSON.
"""

from __future__ import annotations

import argparse
import json
import time

started = time.perf_counter()

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from peft import LoraConfig  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-model", required=True)
    ap.add_argument("--train-file", required=True, help="JSONL, one {'messages': [...]} per line")
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--learning-rate", type=float, default=4e-3)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lora-alpha", type=int, default=32)
    ap.add_argument("--lora-dropout", type=float, default=0.0)
    ap.add_argument("--target-modules", default="all-linear", help="'all-linear' or comma-separated module names")
    ap.add_argument("--save-steps", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--metrics", help="write timings and token counts here (JSON)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    imported = time.perf_counter()
    with open(args.train_file, encoding="utf-8") as f:
        dataset = Dataset.from_list([{"messages": json.loads(line)["messages"]} for line in f if line.strip()])
    tokenizer = AutoTokenizer.from_pretrained(args.base_model)
    model = AutoModelForCausalLM.from_pretrained(args.base_model, dtype=torch.float32)
    modules = args.target_modules if args.target_modules == "all-linear" else args.target_modules.split(",")
    lora = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                      target_modules=modules, task_type="CAUSAL_LM")
    config = SFTConfig(
        output_dir=args.output_dir, num_train_epochs=args.epochs, learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=args.grad_accum,
        max_length=args.max_length, assistant_only_loss=True, use_cpu=True, gradient_checkpointing=False,
        lr_scheduler_type="linear", warmup_steps=0, seed=args.seed, save_strategy="steps",
        save_steps=args.save_steps, save_total_limit=2, logging_steps=1, report_to="none", disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=lora)
    built = time.perf_counter()
    trainer.train()
    trained = time.perf_counter()
    trainer.save_model(args.output_dir)
    done = time.perf_counter()
    if args.metrics:
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        with open(args.metrics, "w", encoding="utf-8") as f:
            json.dump({"import_s": imported - started, "build_s": built - imported, "train_s": trained - built,
                       "save_s": done - trained, "examples": len(trainer.train_dataset),
                       "tokens_per_epoch": sum(len(r["input_ids"]) for r in trainer.train_dataset),
                       "global_step": trainer.state.global_step, "train_loss": losses[-1] if losses else None,
                       "params": sum(p.numel() for p in trainer.model.parameters())}, f)


if __name__ == "__main__":
    main()
