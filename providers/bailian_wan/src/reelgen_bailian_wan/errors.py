"""DashScope's error codes -> reelgen's error types.

A request-level error is an HTTP status with `{"code", "message", "request_id"}`; a
generation that failed is a `FAILED` task on HTTP 200 with `output.code`/`message`
(reference section 5). Where each lands:

```
code (HTTP)                                       create / query / cancel      FAILED task
InvalidApiKey (401), AccessDenied (403)           AuthenticationError (3)      same
Arrearage, AccessDenied.Unpurchased,
  Throttling.AllocationQuota                      QuotaExceeded (3)            same
DataInspectionFailed, IPInfringementSuspect       ContentRejected (3)          same
InvalidParameter*, BadRequest.*, InvalidURL,
  UnsupportedOperation, any other 4xx             RequestRejected (3)          ProviderFailed (4)
Throttling, Throttling.RateQuota (429)            RateLimited (retried)        ProviderFailed (4)
RequestTimeOut (408), InternalError* (5xx),
  ServiceUnavailable (503), any 5xx               TransientError (retried)     ProviderFailed (4)
HTTP 502/504 on create (a gateway gave up)        SubmissionUnknown (4, never retried)
```

A 4xx after our local validation passed is the service refusing this request:
`RequestRejected`, a `ProviderRefused` (exit 3), not a `ValidationError` (exit 2),
which reelgen keeps for what it can tell before any network call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from reelgen.errors import (
    AuthenticationError,
    ContentRejected,
    ProviderError,
    ProviderFailed,
    ProviderRefused,
    QuotaExceeded,
    RateLimited,
    SubmissionUnknown,
    TaskExpired,
    TransientError,
)

from .capabilities import PROVIDER

__all__ = ["Phase", "RequestRejected", "error_for_failed_task", "error_for_response", "expired_task"]

Phase = Literal["create", "query", "cancel"]

_AUTH = frozenset({"InvalidApiKey", "AccessDenied"})
_QUOTA = frozenset({"Arrearage", "AccessDenied.Unpurchased", "Throttling.AllocationQuota"})
_CONTENT = frozenset({"DataInspectionFailed", "IPInfringementSuspect"})

_HINTS = {
    "InvalidApiKey": "check DASHSCOPE_API_KEY (keys are per region: the key, region and endpoint must match)",
    "AccessDenied": "the key may not use this model or workspace",
    "AccessDenied.Unpurchased": "activate wan2.6-i2v-flash for this account in the Model Studio console",
    "Arrearage": "the account is in arrears: top it up",
    "Throttling.AllocationQuota": "the allocated quota is used up: raise it in the console",
    "DataInspectionFailed": "content moderation refused the input or the output",
    "IPInfringementSuspect": "content moderation suspects an IP infringement",
    "InvalidParameter.DataInspection": "the service could not download or read the image or audio: "
    "make sure the URL is public and the format is supported",
    "BadRequest.TooLarge": "the request body is too large: use an http(s) URL for the image, or option upload='oss'",
    "InvalidURL": "a URL in the request is invalid",
}


class RequestRejected(ProviderRefused):
    """The service refused this request (HTTP 4xx) although reelgen's local checks passed."""


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    if not headers:
        return None
    for key, value in headers.items():
        if str(key).lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


def _message(code: str | None, message: str | None, fallback: str) -> str:
    text = (message or "").strip() or fallback
    hint = _HINTS.get(code or "")
    return f"{text} ({hint})" if hint else text


def error_for_response(
    status_code: int,
    code: str | None,
    message: str | None,
    *,
    request_id: str | None = None,
    task_id: str | None = None,
    phase: Phase,
    headers: Mapping[str, Any] | None = None,
) -> ProviderError:
    """The error for a non-200 answer to a create, query or cancel call."""
    code = code or None
    details: dict[str, Any] = {
        "provider": PROVIDER,
        "code": code,
        "request_id": request_id or None,
        "task_id": task_id,
        "status_code": status_code,
    }
    text = _message(code, message, f"DashScope answered HTTP {status_code} to the {phase} call")
    name = code or ""
    if name in _QUOTA:
        return QuotaExceeded(text, **details)
    if name in _AUTH or status_code in (401, 403):
        return AuthenticationError(text, **details)
    if name in _CONTENT or name.startswith("DataInspectionFailed"):
        return ContentRejected(text, **details)
    if name.startswith("Throttling") or status_code == 429:
        return RateLimited(text, retry_after=_retry_after(headers), **details)
    if phase == "create" and status_code in (502, 504):
        return SubmissionUnknown(
            f"{text}; a gateway gave up waiting, so the task may have been created: look for it in the "
            "console (or with VideoSynthesis.list) before submitting again",
            **details,
        )
    if status_code in (408, 500, 502, 503, 504) or (status_code >= 500 and name.startswith("InternalError")):
        return TransientError(text, retry_after=_retry_after(headers), **details)
    if 400 <= status_code < 500:
        return RequestRejected(f"DashScope refused the request: {text}", **details)
    if status_code >= 500:
        return TransientError(text, retry_after=_retry_after(headers), **details)
    return ProviderFailed(text, **details)


def error_for_failed_task(
    code: str | None, message: str | None, *, request_id: str | None, task_id: str
) -> ProviderError:
    """The error for a task whose status is FAILED (a finished, unbilled generation)."""
    details: dict[str, Any] = {
        "provider": PROVIDER,
        "code": code or None,
        "request_id": request_id or None,
        "task_id": task_id,
    }
    name = code or ""
    text = _message(code, message, "the generation failed")
    if name in _QUOTA:
        return QuotaExceeded(text, **details)
    if name in _AUTH:
        return AuthenticationError(text, **details)
    if name in _CONTENT or name.startswith("DataInspectionFailed"):
        return ContentRejected(text, **details)
    return ProviderFailed(f"the generation failed: {text}", **details)


def expired_task(task_id: str, request_id: str | None) -> TaskExpired:
    return TaskExpired(
        "DashScope does not know this task (status UNKNOWN): the id is wrong, belongs to another "
        "region or account, or the task is older than 24 hours",
        provider=PROVIDER,
        code="UNKNOWN",
        request_id=request_id or None,
        task_id=task_id,
    )
