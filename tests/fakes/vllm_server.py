"""A stand-in for `python -m vllm.entrypoints.openai.api_server`, for the LLM server's launcher tests.

It takes the arguments the launcher passes vLLM (others are ignored), serves `FakeOpenAIServer`'s chat API
under the served model name with `max_model_len` listed, and runs until SIGTERM. Test knobs, passed through
`llm_server.extra_args`: `--fake-fail MESSAGE` prints MESSAGE as a Python error and exits 1 at start;
`--fake-start-delay S` waits S seconds before listening; `--fake-ignore-sigterm` must be killed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from tests.fakes.openai_server import FakeOpenAIServer


def main() -> int:
    parser = argparse.ArgumentParser()
    for flag in ("--model", "--served-model-name", "--host", "--dtype", "--fake-fail"):
        parser.add_argument(flag)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-model-len", type=int)
    parser.add_argument("--fake-start-delay", type=float, default=0.0)
    parser.add_argument("--fake-ignore-sigterm", action="store_true")
    args, rest = parser.parse_known_args()
    print(f"fake vLLM: pid={os.getpid()} model={args.model} port={args.port} dtype={args.dtype} other={rest}",
          flush=True)
    if args.fake_fail:
        print(f"RuntimeError: {args.fake_fail}", flush=True)
        return 1
    if not (Path(args.model) / "config.json").is_file():
        print(f"OSError: no config.json in {args.model}", flush=True)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, signal.SIG_IGN if args.fake_ignore_sigterm else lambda *_: stop.set())
    if stop.wait(args.fake_start_delay):
        return 0
    server = FakeOpenAIServer(port=args.port, model_id=args.served_model_name or args.model,
                              max_model_len=args.max_model_len)
    with server:
        print(f"fake vLLM: serving on {server.base_url}", flush=True)
        while not stop.wait(0.1):
            pass
    print("fake vLLM: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
