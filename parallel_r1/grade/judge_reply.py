"""Reading the LLM judge's reply: strictly, as the JSON schema asked for it, or tolerantly, as a fallback for
servers that do not enforce the schema (JSON inside prose, other scales, numbers as strings)."""

from __future__ import annotations

import json
from typing import Any

from parallel_r1.llm_client import json_object


class JudgeError(ValueError):
    """The judge's reply could not be read as a grade, even after asking again."""


def _json_object(text: str) -> dict:
    try:
        return json_object(text)
    except ValueError as e:
        raise JudgeError(str(e)) from None


def _number(value: Any, name: str, top: float = 100) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise JudgeError(f"criterion {name!r} is not a number: {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise JudgeError(f"criterion {name!r} is not a number: {value!r}") from None
    if not 0 <= number <= top:
        raise JudgeError(f"criterion {name!r} is out of range: {number}")
    return number


def read_structured_reply(text: str, names: tuple[str, ...]) -> tuple[dict[str, float], float, str]:
    """(criteria, confidence, notes) from a reply that follows `judge_response_format(names)` exactly: one JSON
    object, every criterion present, every number in [0, 1]."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise JudgeError(f"the reply is not one JSON object ({e.msg})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("criteria"), dict):
        raise JudgeError('the reply has no "criteria" object')
    missing = [n for n in names if n not in obj["criteria"]]
    if missing:
        raise JudgeError(f"criteria missing from the reply: {missing}")
    criteria = {n: _number(obj["criteria"][n], n, top=1) for n in names}
    confidence = _number(obj.get("confidence"), "confidence", top=1)
    return criteria, confidence, str(obj.get("notes") or "")


def parse_judge_reply(text: str, names: tuple[str, ...]) -> tuple[dict[str, float], float | None, str]:
    """(criteria in [0, 1], the judge's confidence or None, notes) from a free-text judge reply.

    Accepts the criteria nested under "criteria" or at the top level, numbers as strings, and 0–10 or
    0–100 scales (detected from the largest value). At least half of the criteria must be present.
    """
    obj = _json_object(text)
    raw = obj.get("criteria", obj)
    if not isinstance(raw, dict):
        raise JudgeError('"criteria" is not an object')
    values = {n: _number(raw[n], n) for n in names if n in raw}
    if len(values) * 2 < len(names):
        raise JudgeError(f"too few criteria: got {sorted(values)}, expected {list(names)}")
    top = max(values.values())
    scale = 1.0 if top <= 1 else 10.0 if top <= 10 else 100.0
    criteria = {n: v / scale for n, v in values.items()}
    confidence = obj.get("confidence")
    if confidence is not None:
        confidence = _number(confidence, "confidence")
        confidence = confidence if confidence <= 1 else confidence / 100
    notes = obj.get("notes") or obj.get("rationale") or ""
    return criteria, confidence, str(notes)
