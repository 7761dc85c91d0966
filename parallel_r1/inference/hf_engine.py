"""The `hf` engine: transformers `generate` on one base model, with every LoRA adapter loaded into one PeftModel.

Batches are left-padded, `InferenceConfig.max_batch_size` conversations per `generate` call. Sampling is done
by a logits processor drawing each prompt's tokens from that prompt's own seeded generator, so a seeded
prompt's samples do not depend on what else shares its batch (HF's own sampling draws from one global RNG).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LogitsProcessor, LogitsProcessorList
from transformers.generation.streamers import BaseStreamer

from parallel_r1.config import InferenceConfig
from parallel_r1.errors import UserFacingError
from parallel_r1.inference.adapters import Adapter, AdapterRegistry
from parallel_r1.inference.chat_text import chat_ids, special_strings
from parallel_r1.inference.engine import Completion, SamplingParams, stop_index


class _SeededSampler(LogitsProcessor):
    """Samples every row (temperature, top-p) from the generator of its prompt, then leaves only the chosen
    token possible, so greedy decoding takes it. Rows are grouped by prompt, `n` rows each, and each group
    draws `n` uniforms per step whatever the batch: prompt i's samples depend on its generator alone."""

    def __init__(self, generators: list[torch.Generator], n: int, temperature: float, top_p: float) -> None:
        self.generators, self.n, self.temperature, self.top_p = generators, n, temperature, top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        sorted_p, order = probs.sort(dim=-1, descending=True)
        if self.top_p < 1:  # keep the smallest prefix whose mass reaches top_p (at least one token)
            sorted_p = sorted_p.masked_fill(sorted_p.cumsum(-1) - sorted_p >= self.top_p, 0.0)
        cdf = sorted_p.cumsum(-1)
        u = torch.cat([torch.rand(self.n, generator=g) for g in self.generators]).to(cdf.device)
        pick = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1)).clamp_(max=cdf.shape[-1] - 1)
        chosen = torch.full_like(scores, float("-inf"))
        return chosen.scatter_(-1, order.gather(-1, pick), 0.0)


class HFEngine:
    """transformers + PEFT. One lock serialises adapter switching and generation: PEFT's active adapter is
    shared model state, and concurrent requests for different adapters would otherwise get each other's."""

    name = "hf"

    def __init__(self, cfg: InferenceConfig, base_model: Path | str,
                 adapters: dict[str, Path | str] | None = None) -> None:
        self._cfg = cfg
        self._device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self._tokenizer = AutoTokenizer.from_pretrained(base_model)
        self._specials = special_strings(self._tokenizer)
        model = AutoModelForCausalLM.from_pretrained(base_model, dtype=getattr(torch, cfg.dtype))
        self._model: torch.nn.Module | None = model.to(self._device).eval()
        self._context = (cfg.max_model_len or getattr(model.config, "max_position_embeddings", None)
                         or self._tokenizer.model_max_length)
        eos = model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if self._tokenizer.eos_token_id is not None and self._tokenizer.eos_token_id not in eos:
            eos.append(self._tokenizer.eos_token_id)
        if not eos:
            raise UserFacingError(f"{base_model} defines no eos / end-of-turn token: generation could not stop")
        self._eos = eos
        self._pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else eos[0]
        self._lock = threading.Lock()
        self._registry = AdapterRegistry()
        for name, path in (adapters or {}).items():
            self.add_adapter(name, path)

    @property
    def adapters(self) -> list[str]:
        return self._registry.names

    @property
    def eos_token_ids(self) -> list[int]:
        """The tokens that end a reply (what a streamer needs to know where a row's reply stops)."""
        return list(self._eos)

    def add_adapter(self, name: str, path: Path | str) -> None:
        with self._lock:
            self._registry.register(name, path, self._load_adapter)

    def remove_adapter(self, name: str) -> None:
        """Unload an adapter (its memory is freed; a later request for it is an unknown adapter)."""
        with self._lock:
            self._registry.remove(name)
            self._model.delete_adapter(name)

    def _load_adapter(self, adapter: Adapter) -> None:
        if isinstance(self._model, PeftModel):
            self._model.load_adapter(str(adapter.path), adapter_name=adapter.name)
        else:
            self._model = PeftModel.from_pretrained(self._live_model(), str(adapter.path), adapter_name=adapter.name)
        self._model.eval()

    def generate(self, conversations: list[list[dict]], sampling: SamplingParams,
                 adapter: str | None = None, streamer: BaseStreamer | None = None) -> list[Completion]:
        """`streamer` (a transformers streamer, for one conversation) gets the prompt's ids, then each step's new
        token of every row (`n` rows) while generation runs, under the lock like the rest of the call."""
        if adapter is not None:
            self._registry.get(adapter)
        step = self._cfg.max_batch_size
        out: list[Completion] = []
        with self._lock, torch.inference_mode(), self._active(adapter):  # the tokenizer is not thread-safe either
            prompts = [self._encode(conv, i) for i, conv in enumerate(conversations)]
            for start in range(0, len(prompts), step):
                out += self._generate_chunk(prompts[start:start + step], start, sampling, adapter, streamer)
        return out

    def generate_each(self, requests: list[tuple[list[list[dict]], str | None]],
                      sampling: SamplingParams) -> list[list[Completion]]:
        """`generate` per (conversations, adapter) request, in order (adapters cannot share a batch here)."""
        return [self.generate(conversations, sampling, adapter) for conversations, adapter in requests]

    def close(self) -> None:
        with self._lock:
            self._model = None
        gc.collect()
        if self._device.type == "cuda":
            torch.cuda.empty_cache()

    def _live_model(self) -> torch.nn.Module:
        if self._model is None:
            raise RuntimeError("the HF engine is closed")
        return self._model

    def _encode(self, conversation: list[dict], index: int) -> list[int]:
        ids = chat_ids(self._tokenizer, conversation, self._specials)
        if len(ids) >= self._context:
            raise UserFacingError(f"conversation {index} has {len(ids)} prompt tokens: no room to reply within "
                                  f"the context length ({self._context})")
        return ids

    @contextlib.contextmanager
    def _active(self, adapter: str | None) -> Iterator[None]:
        """Route generation through `adapter`, or through the bare base model when None."""
        model = self._live_model()
        if not isinstance(model, PeftModel):
            yield
        elif adapter is None:
            with model.disable_adapter():
                yield
        else:
            model.set_adapter(adapter)
            yield

    def _generate_chunk(self, prompts: list[list[int]], first: int, sampling: SamplingParams,
                        adapter: str | None, streamer: BaseStreamer | None = None) -> list[Completion]:
        n = sampling.n
        rows = [p for p in prompts for _ in range(n)]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), self._pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, p in enumerate(rows):
            ids[r, width - len(p):] = torch.tensor(p)
            mask[r, width - len(p):] = 1
        # Like vLLM, a reply stops at the context length: each prompt gets its own budget, cut after generation.
        budgets = [min(sampling.max_tokens, self._context - len(p)) for p in prompts]
        config = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=max(budgets), eos_token_id=self._eos,
                                  pad_token_id=self._pad, temperature=1.0, top_p=1.0, top_k=None,
                                  cache_implementation=self._cfg.hf_cache, stop_strings=list(sampling.stop) or None)
        processors = LogitsProcessorList()
        if sampling.temperature > 0:
            generators = [self._generator(sampling.seed, first + j) for j in range(len(prompts))]
            processors.append(_SeededSampler(generators, n, sampling.temperature, sampling.top_p))
        seqs = self._live_model().generate(input_ids=ids.to(self._device), attention_mask=mask.to(self._device),
                                           generation_config=config, logits_processor=processors,
                                           streamer=streamer, tokenizer=self._tokenizer if sampling.stop else None)
        new = seqs[:, width:].tolist()
        return [self._completion(new[j * n:(j + 1) * n], budgets[j], len(p), adapter, sampling.stop)
                for j, p in enumerate(prompts)]

    @staticmethod
    def _generator(seed: int | None, index: int) -> torch.Generator:
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed + index)
        return generator

    def _completion(self, rows: list[list[int]], budget: int, prompt_tokens: int, adapter: str | None,
                    stop: tuple[str, ...] = ()) -> Completion:
        """Each row's reply up to its end token (counted, as in vLLM) or its first stop string (left out)."""
        done = Completion(texts=[], adapter=adapter, prompt_tokens=prompt_tokens)
        for row in rows:
            row = row[:budget]
            end = next((k for k, t in enumerate(row) if t in self._eos), None)
            reply = row if end is None else row[:end]
            text = self._tokenizer.decode(reply, skip_special_tokens=True)
            if (cut := stop_index(text, stop)) is not None:
                text, end = text[:cut], sum(t != self._pad for t in reply) - 1  # after the stop string: padding
            done.texts.append(text.strip())
            done.completion_tokens.append(len(row) if end is None else end + 1)
            done.finish_reasons.append("length" if end is None else "stop")
        return done
