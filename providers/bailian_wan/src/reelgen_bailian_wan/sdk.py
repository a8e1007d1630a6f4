"""The only module that imports `dashscope`; everything here blocks and runs in a worker thread.

Three things the SDK (1.x surface of dashscope 2.0.2) does that this module works around:

* **Double creates.** `async_call` retries once on any `requests.ConnectionError`
  (`api_entities/http_request.py`, `_send_with_retry`), including a connection dropped
  after the request went out, so a task can be created twice. We pass our own
  `requests.Session` whose adapter turns connection errors into exceptions the SDK does
  not retry, split by whether the request can have reached the server: a failed connect
  (refused, DNS, connect timeout, TLS handshake) is `NotSent`; anything later is
  `MaybeSent`. Each create uses a fresh connection, so "later" really means the server
  may have the request.
* **Global state.** `fetch`, `cancel` and the upload-policy call read
  `dashscope.base_http_api_url` unless given `base_address`, and `VideoSynthesis.fetch` /
  `cancel` do not forward it. We call the SDK's task API one level down
  (`BaseAsyncApi.fetch` / `cancel`, bound to `VideoSynthesis`), and upload with
  `check_and_upload_local(..., base_address=...)`, so every call names its endpoint and
  two providers with different endpoints can share a process. `api_key=` is passed per
  call; `dashscope.api_key` is never set.
* **Log noise.** The SDK logs every transport exception with a traceback; with no handler
  configured Python prints it to stderr. A `NullHandler` on the `dashscope` logger keeps
  that out of the CLI's output (an application that configures logging still sees it).
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from requests.adapters import HTTPAdapter

__all__ = ["MaybeSent", "NotSent", "cancel_task", "create_task", "fetch_task", "list_tasks", "upload_file"]

logging.getLogger("dashscope").addHandler(logging.NullHandler())

#: Seconds to wait for a TCP/TLS connection before the request counts as not sent.
CONNECT_TIMEOUT = 10.0


class NotSent(requests.exceptions.RequestException):
    """The create never reached the server (connecting failed): safe to retry."""


class MaybeSent(requests.exceptions.RequestException):
    """The connection failed after the request was (or may have been) sent."""


def _failed_to_connect(exc: BaseException) -> bool:
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)):
        return True
    for arg in exc.args:
        reason = getattr(arg, "reason", None) if isinstance(arg, MaxRetryError) else arg
        if isinstance(reason, (NewConnectionError, ConnectTimeoutError)):
            return True
    return False


class _OneShotAdapter(HTTPAdapter):
    """Never retries, and says whether a failed request can have reached the server."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        try:
            return super().send(request, *args, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            if _failed_to_connect(exc):
                raise NotSent(f"could not connect: {exc}") from exc
            raise MaybeSent(f"the connection failed after sending: {exc}") from exc


def _one_shot_session() -> requests.Session:
    session = requests.Session()
    adapter = _OneShotAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # A fresh connection per create: a reused keep-alive connection dropped by the
    # server would be indistinguishable from a request that was lost after sending.
    session.headers["Connection"] = "close"
    return session


def create_task(call: dict[str, Any], *, api_key: str, base_url: str, workspace: str | None, timeout: float) -> Any:
    """`VideoSynthesis.async_call(**call)`; returns the SDK's `VideoSynthesisResponse`."""
    from dashscope import VideoSynthesis

    with _one_shot_session() as session:
        return VideoSynthesis.async_call(
            **call,
            api_key=api_key,
            workspace=workspace,
            base_address=base_url,
            session=session,
            request_timeout=(CONNECT_TIMEOUT, timeout),
        )


def fetch_task(task_id: str, *, api_key: str, base_url: str, workspace: str | None) -> Any:
    """One status query; returns a `VideoSynthesisResponse`."""
    from dashscope import VideoSynthesis
    from dashscope.api_entities.dashscope_response import VideoSynthesisResponse
    from dashscope.client.base_api import BaseAsyncApi

    # VideoSynthesis.fetch drops base_address; the base class method takes it.
    response = BaseAsyncApi.fetch.__func__(  # type: ignore[attr-defined]
        VideoSynthesis, task_id, api_key=api_key, workspace=workspace, base_address=base_url
    )
    return VideoSynthesisResponse.from_api_response(response)


def cancel_task(task_id: str, *, api_key: str, base_url: str, workspace: str | None) -> Any:
    """Ask the service to cancel a PENDING task; returns a `DashScopeAPIResponse`."""
    from dashscope import VideoSynthesis
    from dashscope.client.base_api import BaseAsyncApi

    return BaseAsyncApi.cancel.__func__(  # type: ignore[attr-defined]
        VideoSynthesis, task_id, api_key=api_key, workspace=workspace, base_address=base_url
    )


def upload_file(path: str, *, model: str, api_key: str, base_url: str, workspace: str | None) -> str:
    """Upload a local file with the SDK's temporary OSS upload; returns its `oss://` URL."""
    from dashscope.utils.oss_utils import check_and_upload_local

    kwargs: dict[str, Any] = {"base_address": base_url}
    if workspace is not None:
        kwargs["workspace"] = workspace
    uploaded, url, _ = check_and_upload_local(model, path, api_key, **kwargs)
    if not uploaded or not str(url).startswith("oss://"):
        raise FileNotFoundError(path)
    return str(url)


def list_tasks(
    *,
    start_time: str,
    end_time: str,
    model: str,
    page_no: int,
    page_size: int,
    api_key: str,
    base_url: str,
    workspace: str | None,
) -> Any:
    """One page of the account's task list (`GET {base}/tasks`), filtered by time and model.

    Times are `YYYYMMDDhhmmss` in the service's zone (UTC+8). Returns the SDK's
    `DashScopeAPIResponse`: `output` holds `total`, `data` (rows with `task_id`,
    `gmt_create` in ms, `status`, `model_name`) and `total_page`.
    """
    from dashscope import VideoSynthesis
    from dashscope.client.base_api import BaseAsyncApi

    return BaseAsyncApi.list.__func__(  # type: ignore[attr-defined]
        VideoSynthesis,
        start_time=start_time,
        end_time=end_time,
        model_name=model,
        page_no=page_no,
        page_size=page_size,
        api_key=api_key,
        workspace=workspace,
        base_address=base_url,
    )
