"""Running schemathesis' engine over a live API, and judging its findings by what was sent.

Two of schemathesis' checks judge the generated Python object rather than the request
that went out: positive_data_acceptance assumes the object is valid, negative_data_rejection
that it is not. A form carries text, so the two can part: the number ``6e-273`` sent as a
form field *is* the text "6e-273", a valid one-label list; and the coverage phase fills a
required form field that has no encoding of its own with "" yet calls the body valid. Each
such finding is read back from the bytes that were sent, as a form is read (every part is
text or a file, which its property's type gives a meaning), and set aside, and reported,
when the request as sent does not say what the check assumed.
"""

from __future__ import annotations

import base64
import email
import email.policy
import io
import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import schemathesis
from hypothesis import strategies as st
from PIL import Image
from schemathesis.engine import events

_MODES = ("RGB", "L", "RGBA", "P", "1", "I;16")
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


# -- real images for fields documented as images ------------------------------------------
def encoded_image(size: tuple[int, int], mode: str, fmt: str, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB").convert("L" if mode == "I;16" else mode)
    if mode == "I;16":
        image = image.convert("I;16")
    if fmt != "PNG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def images(fmt: str | None = None) -> st.SearchStrategy[bytes]:
    """Small real images: 1 to 40 pixels a side, of several modes, in ``fmt`` or any format."""
    return st.builds(encoded_image, st.tuples(st.integers(1, 40), st.integers(1, 40)), st.sampled_from(_MODES),
                     st.just(fmt) if fmt else st.sampled_from(sorted(FORMATS)), st.integers(0, 2**16))


def as_base64(data: bytes, data_url: bool) -> str:
    text = base64.b64encode(data).decode()
    return f"data:image/png;base64,{text}" if data_url else text


# -- a request as sent ---------------------------------------------------------------------
def _parts(content_type: str, body: bytes) -> dict[str, list]:
    """name -> values of a multipart body: bytes for a file, text for anything else."""
    message = email.message_from_bytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body,
                                       policy=email.policy.HTTP)
    parts: dict[str, list] = {}
    for part in message.iter_parts():
        payload = part.get_payload(decode=True) or b""
        value = payload if part.get_filename() else payload.decode("utf-8", "replace")
        parts.setdefault(part.get_param("name", header="content-disposition"), []).append(value)
    return parts


def _read(value, schema: dict):
    """One form value, given the meaning its property's type says it has."""
    if isinstance(value, bytes):
        return ""  # a file: to JSON Schema, a string
    readers = {"integer": int, "number": float, "object": json.loads,
               "boolean": lambda text: {"true": True, "false": False}[text.lower()]}
    # An optional form field is "a boolean, or empty": each option's type may give the meaning.
    for kind in [schema.get("type"), *(option.get("type") for option in schema.get("anyOf", []))]:
        try:
            return readers[kind](value)
        except (ValueError, KeyError):
            continue
    return value  # stays text, which the schema then judges


def as_sent(case, request):
    """The body the server received, as JSON Schema sees it; ``None`` if there is no telling."""
    content_type = next(iter(request.headers.get("Content-Type", [])), "")
    if request.body is None:
        return None
    if content_type.startswith("application/json"):
        try:
            return json.loads(request.body)
        except ValueError:
            return None
    if not content_type.startswith("multipart/form-data"):
        return None
    schema = _body(case).resolved_schema or {}
    view = {}
    for name, values in _parts(content_type, request.body).items():
        prop = schema.get("properties", {}).get(name, {})
        if prop.get("type") == "array":
            view[name] = [_read(v, prop.get("items", {})) for v in values]
        else:
            read = [_read(v, prop) for v in values]
            view[name] = read[0] if len(read) == 1 else read
    return view


def _body(case):
    return next(b for b in case.operation.body if b.media_type == case.media_type)


def premise_fails(check: str, case, request) -> bool:
    """Whether the request as sent breaks the premise of ``check``'s finding about it."""
    if check not in ("positive_data_acceptance", "negative_data_rejection") or request is None:
        return False
    sent = as_sent(case, request)
    if sent is None:
        return False
    valid = _body(case).is_valid(sent)
    return not valid if check == "positive_data_acceptance" else valid


# -- a run ---------------------------------------------------------------------------------
@dataclass
class Report:
    cases: int = 0
    requests: int = 0
    checks: Counter = field(default_factory=Counter)  # how often each check judged a response
    failures: list[str] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)  # findings whose premise the request as sent breaks


def run(schema) -> Report:
    """Every phase of schemathesis' engine over ``schema``, with its configuration."""
    report = Report()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.NonFatalError | events.FatalError):
            report.failures.append(f"error: {getattr(event, 'label', '')}: {getattr(event, 'value', event)!r}"[:2000])
        recorder = getattr(event, "recorder", None)
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished) and recorder is not None:
            report.cases += len(recorder.cases)
            report.requests += len(recorder.interactions)
            _findings(recorder, report)
        if isinstance(event, events.EngineFinished):
            report.failures.extend(f"after the run: {failure!r}" for failure in event.failures)
    report.failures, report.set_aside = sorted(set(report.failures)), sorted(set(report.set_aside))
    return report


def _findings(recorder, report: Report) -> None:
    for case_id, checks in recorder.checks.items():
        for check in checks:
            report.checks[check.name] += 1
            if check.failure_info is None:
                continue
            case = recorder.cases[case_id].value
            interaction = recorder.interactions.get(case_id)
            request = interaction.request if interaction else None
            aside = premise_fails(check.name, case, request)
            (report.set_aside if aside else report.failures).append(describe(case, interaction, check))


def describe(case, interaction, check) -> str:
    request, response = (interaction.request, interaction.response) if interaction else (None, None)
    failure = check.failure_info.failure
    phase = case.meta.phase.name if case.meta is not None else "?"
    sent = (request.body or b"")[:400].decode(errors="replace") if request else ""
    answer = response.content[:300].decode(errors="replace") if response is not None else "no response"
    said = (failure.message.splitlines() or [failure.title or "no message"])[-1]  # a server error may say nothing
    return (f"{check.name} on {case.operation.label} ({phase}; {said}): "
            f"sent {sent!r} -> {response.status_code if response is not None else '-'} {answer}")
