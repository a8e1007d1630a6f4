"""Request-level errors as the service words them (reference §5), and OSS's XML errors.

An `ApiError` raised anywhere while handling an API request becomes the JSON body
`{"request_id", "code", "message"}` with its HTTP status. A failure *during
generation* is not an `ApiError`: it is a FAILED task on HTTP 200 (see `state`).
"""

from __future__ import annotations

from xml.sax.saxutils import escape

__all__ = ["MESSAGES", "ApiError", "OssError", "failure_message"]

# Default messages per code, verbatim from the reference's tables where it has them.
MESSAGES = {
    "InvalidParameter": ("Required parameter(s) missing or invalid, please check the request parameters."),
    "DataInspectionFailed": "Input or output data may contain inappropriate content.",
    "InvalidParameter.DataInspection": ("The media format is not supported or incorrect for the data inspection."),
    "BadRequest.EmptyInput": "Required input parameter missing from request.",
    "BadRequest.EmptyParameters": 'Required parameter "parameters" missing from request.',
    "BadRequest.EmptyModel": 'Required parameter "model" missing from request.',
    "InvalidURL": "Invalid URL provided in your request.",
    "Arrearage": "Access denied, please make sure your account is in good standing.",
    "UnsupportedOperation": ("Failed to cancel the task, please confirm if the task is in PENDING status."),
    "InvalidApiKey": "Invalid API-key provided.",
    "AccessDenied": "Access denied.",
    "AccessDenied.Unpurchased": ("Access to model denied. Please make sure you are eligible for using the model."),
    "RequestTimeOut": "Request timed out, please try again later.",
    "BadRequest.TooLarge": "Payload Too Large",
    "Throttling": "Requests throttling triggered.",
    "Throttling.RateQuota": "Requests rate limit exceeded, please try again later.",
    "Throttling.AllocationQuota": "Allocated quota exceeded, please increase your quota limit.",
    "InternalError": ("An internal error has occured, please try again later or contact service support."),
    "InternalError.Algo": (
        "An internal error has occured during execution, please try again later or contact service support."
    ),
    "ServiceUnavailable": "Service temporarily unavailable, possibly overloaded or not ready.",
}

DOWNLOAD_TIMED_OUT = "Download the media resource timed out during the data inspection process."
MEDIA_NOT_FOUND = "Failed to find the requested media resource during the data inspection process."


def failure_message(code: str) -> str:
    """The message a FAILED task carries for `code` (falls back to the generic one)."""
    return MESSAGES.get(code, MESSAGES["InternalError"])


class ApiError(Exception):
    """A rejected API request: HTTP `status`, DashScope `code` and `message`."""

    def __init__(self, status: int, code: str, message: str | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message if message is not None else MESSAGES.get(code, code)
        super().__init__(f"{status} {code}: {self.message}")

    @classmethod
    def invalid(cls, message: str | None = None) -> ApiError:
        return cls(400, "InvalidParameter", message)

    @classmethod
    def throttled(cls, code: str = "Throttling.RateQuota") -> ApiError:
        return cls(429, code)


class OssError(Exception):
    """An OSS-style error, answered as `application/xml` like Alibaba Cloud OSS does."""

    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra
        super().__init__(f"{status} {code}: {message}")

    def to_xml(self, request_id: str, host_id: str) -> bytes:
        fields = [("Code", self.code), ("Message", self.message), ("RequestId", request_id)]
        fields.append(("HostId", host_id))
        fields.extend(self.extra.items())
        body = "".join(f"  <{name}>{escape(value)}</{name}>\n" for name, value in fields)
        return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n{body}</Error>\n'.encode()
