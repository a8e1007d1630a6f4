"""Every error reelgen raises, arranged so the type alone says whose fault it is.

```
ReelgenError
├── ConfigError                 your configuration file or environment is wrong       (exit 2)
├── PluginError                 a plugin is broken or a provider name is unknown       (exit 2)
├── ValidationError             your request is wrong; fix it, never retried           (exit 2)
│   └── StrictWarningError        the provider cannot honour it exactly and strict=True
├── ProviderError               the provider said no or broke (.provider .code .message .request_id .task_id)
│   ├── ProviderRefused           it will not do this for you as things stand          (exit 3)
│   │   ├── AuthenticationError     missing, wrong or unauthorised API key
│   │   ├── QuotaExceeded           arrears, purchase or allocation quota
│   │   └── ContentRejected         content moderation
│   ├── TransientError            worth retrying with backoff (.retry_after)            (exit 4)
│   │   └── RateLimited             throttled (429)
│   ├── SubmissionUnknown         the create may have made a billed job (.job_id, .candidates) (exit 4)
│   └── ProviderFailed            the job failed for good                              (exit 4)
│       └── TaskExpired             the provider no longer knows the task (expired)
├── GenerationTimeout           the overall deadline passed; the remote job may still run (exit 4)
├── Cancelled                   you (or Ctrl-C) cancelled the job                        (exit 130)
└── StorageError                the video could not be downloaded or stored            (exit 4)
    ├── IntegrityError            the file is not what it claims (not an MP4, too big, truncated)
    │   └── TooLarge                over the storage cap (storage.max_bytes); never retried
    └── DeliveryFailed            paid, not yet stored (.job_id): `reelgen jobs resume ID`
```

Secrets never appear here: errors carry the provider's code, message and request id,
and `redact` scrubs anything that looks like an API key from messages built from
provider text.
"""

from __future__ import annotations

import re
from typing import ClassVar

__all__ = [
    "AuthenticationError",
    "Cancelled",
    "ConfigError",
    "ContentRejected",
    "DeliveryFailed",
    "GenerationTimeout",
    "IntegrityError",
    "PluginError",
    "ProviderError",
    "ProviderFailed",
    "ProviderRefused",
    "QuotaExceeded",
    "RateLimited",
    "ReelgenError",
    "StorageError",
    "StrictWarningError",
    "SubmissionUnknown",
    "TaskExpired",
    "TooLarge",
    "TransientError",
    "ValidationError",
    "redact",
]

# DashScope keys look like sk-<32 hex>; other providers use similar prefixes. Not \b before
# "sk-": a key glued to a digit or "_" ("%20sk-...", "key_sk-...") is still a key, but one
# glued to a letter is a word ("task-...", "disk-...").
# Bearer tokens in echoed headers are the other way keys leak into messages; RFC 6750
# tokens may hold "~+/" and end in "=" padding.
_TOKEN = r"[A-Za-z0-9._~+/\-]{6,}=*"
_SECRET_PATTERNS = (
    re.compile(r"(?<![A-Za-z])sk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)(bearer\s+)" + _TOKEN),
    re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)" + _TOKEN),
)


def redact(text: str, *secrets: str | None) -> str:
    """Return `text` with the given secrets and anything shaped like a key removed."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


class ReelgenError(Exception):
    """Base of every error reelgen raises on purpose."""

    exit_code: ClassVar[int] = 4


class ConfigError(ReelgenError):
    """The configuration (file, environment or flags) is invalid; the message names the key."""

    exit_code = 2


class PluginError(ReelgenError):
    """A plugin failed to load or a provider name is not installed."""

    exit_code = 2


class ValidationError(ReelgenError, ValueError):
    """The request cannot be honoured as written. Raised before any network call.

    `field` names the request field at fault (or None for the request as a whole).
    """

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class StrictWarningError(ValidationError):
    """With `strict=True`, a warning (a setting the provider cannot honour exactly)."""

    def __init__(self, warnings: list[str]) -> None:
        joined = "; ".join(warnings)
        super().__init__(
            f"strict mode: the provider cannot honour this request exactly: {joined} "
            "(change the request, or drop --strict to accept and get these as warnings)"
        )
        self.warnings = list(warnings)

    def __reduce__(self) -> tuple[type[StrictWarningError], tuple[list[str]]]:
        # Rebuild from the warnings, not the message (which __init__ would split into characters).
        return (type(self), (self.warnings,))


class ProviderError(ReelgenError):
    """The provider refused or failed. Carries what the provider said, never a secret."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        code: str | None = None,
        request_id: str | None = None,
        task_id: str | None = None,
        status_code: int | None = None,
    ) -> None:
        self.provider = provider
        self.code = code
        self.provider_message = redact(message)
        self.request_id = request_id
        self.task_id = task_id
        self.status_code = status_code
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [self.provider_message]
        details = [
            f"{name}={value}"
            for name, value in (
                ("provider", self.provider),
                ("code", self.code),
                ("http", self.status_code),
                ("task_id", self.task_id),
                ("request_id", self.request_id),
            )
            if value is not None
        ]
        if details:
            parts.append(f"({', '.join(details)})")
        # The code and ids come from the provider too: scrub the whole message.
        return redact(" ".join(parts))


class ProviderRefused(ProviderError):
    """The provider will not do this as things stand: fix the account, key or content."""

    exit_code = 3


class AuthenticationError(ProviderRefused):
    """The API key is missing, wrong, or not allowed to use this model."""


class QuotaExceeded(ProviderRefused):
    """The account is in arrears, or a purchase or allocation quota is exhausted."""


class ContentRejected(ProviderRefused):
    """The provider's content moderation rejected the input or the output."""


class TransientError(ProviderError):
    """A fault worth retrying with backoff; `retry_after` is the provider's hint, in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class RateLimited(TransientError):
    """The provider throttled us (HTTP 429). The request was not carried out."""


class SubmissionUnknown(ProviderError):
    """The create request was sent but no answer came back.

    A billed job may exist. It is never retried blindly: the error says what is known
    so the caller can look for the task before paying twice. `job_id` is the journal
    entry (`reelgen jobs resume ID` reconciles it), `candidates` the provider's tasks
    that may be it.
    """

    job_id: str | None = None
    candidates: tuple[str, ...] = ()


class ProviderFailed(ProviderError):
    """The job failed for good (the provider's code and message say why)."""


class TaskExpired(ProviderFailed):
    """The provider no longer knows the task: unknown id, or older than its retention."""


class GenerationTimeout(ReelgenError):
    """The overall deadline passed before the video was ready.

    The remote job may still be running (and billed): `job_id` lets `reelgen.resume` pick it up.
    """

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class Cancelled(ReelgenError):
    """The job was cancelled. `remote_cancelled` says whether the provider stopped it too."""

    exit_code = 130

    def __init__(self, message: str, *, job_id: str | None = None, remote_cancelled: bool = False) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.remote_cancelled = remote_cancelled


class StorageError(ReelgenError):
    """The video could not be downloaded or stored. Nothing partial is left behind."""


class IntegrityError(StorageError):
    """The downloaded file is not what it claims: not an MP4, too large, or truncated."""


class TooLarge(IntegrityError):
    """The video is over the storage cap (`storage.max_bytes`); downloading again cannot help."""


class DeliveryFailed(StorageError):
    """The provider finished (and billed) the job, but the video is not stored yet.

    The job stays recoverable (`delivery_failed` in the journal) while the provider's URL
    lives: `reelgen jobs resume ID` / `reelgen.resume(ID)` finishes the delivery.
    """

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id
