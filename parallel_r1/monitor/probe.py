"""Scheduled evaluations: compare's held-out prefixes sent to the running Serve app for every served model, the
replies graded with the configured grader and appended to the online log like served traffic (`source: probe`),
so a version with little traffic still has signals, and every version is measured on the same prefixes."""

from __future__ import annotations

import os
import time

import httpx

from parallel_r1.compare.heldout import read_heldout
from parallel_r1.config import PipelineConfig
from parallel_r1.data.io import append_line
from parallel_r1.data.profiles import StudentProfileConfig
from parallel_r1.errors import UserFacingError
from parallel_r1.grade import build_grader, resolved_grade
from parallel_r1.monitor.log import evaluation_record, score_log_path
from parallel_r1.paths import RunPaths


def probe(cfg: PipelineConfig, served: dict[str, str]) -> int:
    """Ask `monitor.probe_url` each held-out prefix as each served model (name -> its promoted version); returns the
    evaluations logged. An app that
    cannot be reached is a one-line error; a request it fails is logged as an evaluation with an error."""
    m, paths = cfg.monitor, RunPaths(cfg.workdir)
    heldout = paths.eval / "heldout.json"
    if not heldout.exists():
        raise UserFacingError(f"monitor.probe_url is set but {heldout} does not exist: run `parallel-r1 compare`")
    items = read_heldout(heldout)[:m.probe_prompts]
    grader = build_grader(resolved_grade(cfg), paths)
    token = os.environ.get(cfg.serve.auth_token_env or "", "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    log, url, n = score_log_path(cfg.serve, paths.workdir), f"{m.probe_url.rstrip('/')}/v1/chat/completions", 0
    with httpx.Client(timeout=cfg.serve.ready_timeout_s, headers=headers) as http:
        for model, ref in served.items():
            for item in items:
                body = {"model": model, "messages": item.history, "max_tokens": m.probe_max_tokens,
                        "temperature": 0.0}
                try:
                    r = http.post(url, json=body)
                except httpx.HTTPError as e:
                    raise UserFacingError(f"monitor.probe_url {m.probe_url} unreachable ({type(e).__name__}: "
                                          f"{e})") from None
                append_line(log, _record(r, model, ref, item, grader))
                n += 1
    return n


def _record(r: httpx.Response, model: str, ref: str, item, grader) -> dict:
    fields = {"source": "probe", "item_id": item.item_id, "profile_kind": item.profile_kind}
    try:
        body = r.json()
        reply = body["choices"][0]["message"]["content"] if r.status_code == 200 else None
    except (ValueError, KeyError, IndexError, TypeError):
        reply = None
    if reply is None:
        return {"ts": time.time(), "specialist": model, "version": ref, "score": None, "error": True,
                "status": r.status_code, **fields}
    grade = grader.grade_turn(item.history, reply, StudentProfileConfig(**item.profile))
    return evaluation_record(grade, reply=reply, history=item.history, specialist=model,
                             version=body.get("version") or ref, **fields)
