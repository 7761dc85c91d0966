"""What the model backends give the router: whole replies (`Generation`), or replies streamed as generated; and
the router's client of each backend kind.

A backend's `generate(...)` returns one `Generation`; its `stream(...)` yields `Delta`s (new text of choice
`index`) and ends with one `Generation` (the whole replies, finish reasons and token counts; or, before any
delta, the refusal of a bad request). Replies are `strip()`ped when not streamed, so `TextDeltas` holds back
leading and trailing whitespace (and a trailing half-decoded character) until text follows it: the
concatenated deltas always equal the non-streamed reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from parallel_r1.inference.engine import partial_stop, stop_index

REPLACEMENT = "\ufffd"  # what decoding shows for the first bytes of a character whose last bytes are still to come


@dataclass
class Generation:
    """What a backend returns for one conversation: `n` replies, or the user error it was refused with."""

    texts: list[str]
    finish_reasons: list[str]
    prompt_tokens: int
    completion_tokens: list[int]
    error: str | None = None  # a problem with the request (e.g. a prompt over the context length)

    @classmethod
    def refused(cls, message: str) -> Generation:
        return cls([], [], 0, [], error=message)


@dataclass(frozen=True)
class Delta:
    """New text of choice `index`."""

    index: int
    text: str


class TextDeltas:
    """The deltas of one choice: feed the whole raw text so far, get what is new of its stripped form (cut before
    the first `stop` string, and holding back an end that may still become one)."""

    def __init__(self, stop: Sequence[str] = ()) -> None:
        self.sent, self.stop = "", tuple(stop)

    def update(self, raw: str) -> str:
        if (cut := stop_index(raw, self.stop)) is not None:
            raw = raw[:cut]
        else:
            raw = raw[:len(raw) - partial_stop(raw, self.stop)]
        visible = raw.strip().rstrip(REPLACEMENT).rstrip()
        if len(visible) <= len(self.sent) or not visible.startswith(self.sent):
            return ""
        delta, self.sent = visible[len(self.sent):], visible
        return delta

    def finish(self, final: str) -> str:
        """The rest of the final (stripped) reply; decoding only appends, so what was sent is a prefix of it."""
        rest = final[len(self.sent):] if final.startswith(self.sent) else ""
        self.sent += rest
        return rest


class StreamedChoices:
    """The `n` choices of a streamed OpenAI chat completion, fed its chunks as dicts: `add` returns the new text of
    each choice as `Delta`s, `finish` the rest and the whole `Generation`."""

    def __init__(self, n: int) -> None:
        self.raw, self.reasons = [""] * n, ["stop"] * n
        self.deltas = [TextDeltas() for _ in range(n)]
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0}

    def add(self, chunk: dict) -> list[Delta]:
        self.usage = chunk.get("usage") or self.usage
        new = []
        for choice in chunk.get("choices") or []:
            i = choice["index"]
            self.raw[i] += (choice.get("delta") or {}).get("content") or ""
            self.reasons[i] = choice.get("finish_reason") or self.reasons[i]
            if text := self.deltas[i].update(self.raw[i]):
                new.append(Delta(i, text))
        return new

    def finish(self) -> tuple[list[Delta], Generation]:
        texts = [r.strip() for r in self.raw]
        rest = [Delta(i, text) for i, t in enumerate(texts) if (text := self.deltas[i].finish(t))]
        return rest, Generation(texts=texts, finish_reasons=self.reasons, prompt_tokens=self.usage["prompt_tokens"],
                                completion_tokens=[self.usage["completion_tokens"]])


def backend_client(kind: str, handle, grpc: bool, specials: list[str]):
    """The router's client for the model deployment of backend `kind` ("hf" or "vllm"; "vllm_in_router": `handle`
    is the Serve LLM config of an engine this process runs itself); `grpc`: its calls go over
    the replicas' inter-deployment gRPC servers, by value, instead of through Ray object references; `specials`:
    the base model's special-token strings (vllm: defused in message contents before the engine tokenises them)."""
    if kind == "vllm_in_router":
        from parallel_r1.serve.vllm_backend import EngineInProcess, LLMClient

        return LLMClient(EngineInProcess(handle), specials)
    if grpc:
        handle = handle.options(_by_reference=False)
    if kind == "vllm":
        from parallel_r1.serve.vllm_backend import LLMClient

        return LLMClient(handle, specials)
    from parallel_r1.serve.hf_backend import HFClient

    return HFClient(handle)
