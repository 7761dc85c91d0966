"""Random-init LoRA adapters (tests, benchmarks): they change a model's outputs without any training."""

from __future__ import annotations

from pathlib import Path


def random_adapter(base: Path, out: Path, seed: int = 0, r: int = 8) -> Path:
    """A rank-`r` LoRA on every linear layer of `base` with random (non-identity) weights, saved to `out`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear",
                                     init_lora_weights=False)).save_pretrained(out)
    return out


def promote(workdir: Path, name: str, folder: Path | str, score: float = 0.5, kind: str = "adapter"):
    """Register the model in `folder` (an adapter; a full model; an OpenAI model id for "openai") as a version of
    `name` and promote it, as the gate does on a win."""
    from parallel_r1.registry.promotion import PromotionRecord

    record = PromotionRecord(workdir)
    version = record.registry.register(name, kind, folder)
    record.decide({"candidate": version.ref, "promoted": True, "reasons": ["promoted by a test"]}, version, score)
    return version
