"""Every documented DashScope error code lands on the right reelgen error, through the real SDK.

Create and query replies come from a scripted loopback server (any status and code);
FAILED tasks, expiry, throttling and auth come from the emulator.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reelgen.errors import (
    AuthenticationError,
    ContentRejected,
    ProviderFailed,
    QuotaExceeded,
    RateLimited,
    SubmissionUnknown,
    TaskExpired,
    TransientError,
)
from reelgen.provider import ProviderJob
from reelgen_bailian_wan import RequestRejected
from reelgen_bailian_wan.emulator import Faults
from tests.providers.bailian_wan.helpers import API_KEY, SCALE, drive, provider_for, request
from tests.providers.bailian_wan.wire import Answer, closed_port, created, error, scripted_server

# Reference section 5, every row, on a create call.
CREATE_CODES = [
    (400, "InvalidParameter", RequestRejected, 3),
    (400, "DataInspectionFailed", ContentRejected, 3),
    (400, "IPInfringementSuspect", ContentRejected, 3),
    (400, "InvalidParameter.DataInspection", RequestRejected, 3),
    (400, "BadRequest.EmptyInput", RequestRejected, 3),
    (400, "BadRequest.EmptyParameters", RequestRejected, 3),
    (400, "BadRequest.EmptyModel", RequestRejected, 3),
    (400, "InvalidURL", RequestRejected, 3),
    (400, "Arrearage", QuotaExceeded, 3),
    (400, "UnsupportedOperation", RequestRejected, 3),
    (400, "InternalError.Algo.InvalidParameter", RequestRejected, 3),
    (401, "InvalidApiKey", AuthenticationError, 3),
    (403, "AccessDenied", AuthenticationError, 3),
    (403, "AccessDenied.Unpurchased", QuotaExceeded, 3),
    (408, "RequestTimeOut", TransientError, 4),
    (413, "BadRequest.TooLarge", RequestRejected, 3),
    (429, "Throttling", RateLimited, 4),
    (429, "Throttling.RateQuota", RateLimited, 4),
    (429, "Throttling.AllocationQuota", QuotaExceeded, 3),
    (500, "InternalError", TransientError, 4),
    (500, "InternalError.Algo", TransientError, 4),
    (503, "ServiceUnavailable", TransientError, 4),
    (502, "BadGateway", SubmissionUnknown, 4),
    (504, "GatewayTimeout", SubmissionUnknown, 4),
]


@pytest.fixture
def server():
    with scripted_server() as running:
        yield running


@pytest.mark.parametrize(("status", "code", "kind", "exit_code"), CREATE_CODES)
async def test_create_errors_are_classified(server, wide_photo: Path, status, code, kind, exit_code) -> None:
    server.routes["create"] = [error(status, code, f"message for {code}", request_id=f"rid-{code}")]
    provider = provider_for(server)
    with pytest.raises(kind) as caught:
        await provider.submit(request(wide_photo))
    exc = caught.value
    assert type(exc) is kind
    assert (exc.code, exc.status_code, exc.request_id, exc.provider) == (code, status, f"rid-{code}", "bailian_wan")
    assert exc.exit_code == exit_code
    assert f"message for {code}" in str(exc)
    assert API_KEY not in str(exc) and API_KEY not in repr(exc.args)
    assert server.hits["create"] == 1  # never retried by the SDK or the provider


async def test_retry_after_is_carried_on_throttling(server, wide_photo: Path) -> None:
    server.routes["create"] = [error(429, "Throttling.RateQuota", **{"Retry-After": "3"})]
    with pytest.raises(RateLimited) as caught:
        await provider_for(server).submit(request(wide_photo))
    assert caught.value.retry_after == 3.0


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (Answer(500, b"upstream exploded"), TransientError),
        (Answer(502, b"bad gateway"), SubmissionUnknown),
        (Answer(200, b"not json"), SubmissionUnknown),
        (Answer(200, {"request_id": "r", "output": {"task_status": "PENDING"}}), SubmissionUnknown),
    ],
)
async def test_odd_create_replies_are_classified(server, wide_photo: Path, answer, kind) -> None:
    server.routes["create"] = [answer]
    with pytest.raises(kind):
        await provider_for(server).submit(request(wide_photo))


def _job(task_id: str = "task-1") -> ProviderJob:
    return ProviderJob(provider="bailian_wan", model="wan2.6-i2v-flash", task_id=task_id, submitted_at=0.0)


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (error(401, "InvalidApiKey"), AuthenticationError),
        (error(403, "AccessDenied"), AuthenticationError),
        (error(400, "Arrearage"), QuotaExceeded),
        (error(429, "Throttling"), RateLimited),
        (error(500, "InternalError"), TransientError),
        (error(503, "ServiceUnavailable"), TransientError),
        (error(504, "RequestTimeOut"), TransientError),
        (error(408, "RequestTimeOut"), TransientError),
        (error(400, "InvalidParameter"), RequestRejected),
        (Answer(502, b"bad gateway"), TransientError),
        (Answer(200, b"<html>not json</html>"), TransientError),
        (Answer(200, {"request_id": "r", "output": {"task_id": "task-1"}}), TransientError),
        (Answer(fault="reset"), TransientError),
    ],
)
async def test_query_errors_are_classified(server, answer, kind) -> None:
    server.routes["query"] = [answer]
    with pytest.raises(kind) as caught:
        await provider_for(server).poll(_job())
    assert type(caught.value) is kind
    assert caught.value.task_id == "task-1"


async def test_a_hung_query_is_transient(server) -> None:
    server.routes["query"] = [Answer(fault="hang")]
    with pytest.raises(TransientError, match="longer than"):
        await provider_for(server, request_timeout=0.3).poll(_job())


# -- the create that may have happened ----------------------------------------------------


async def test_a_connection_reset_after_sending_is_submission_unknown_and_not_retried(server, wide_photo) -> None:
    server.routes["create"] = [Answer(fault="reset"), created()]
    with pytest.raises(SubmissionUnknown, match="may exist"):
        await provider_for(server).submit(request(wide_photo))
    # The SDK retries a ConnectionError once by itself; our session stops that double create.
    assert server.hits["create"] == 1


def test_the_sdk_alone_would_send_the_create_twice(server, wide_photo) -> None:
    """Why the provider brings its own session: the SDK's one retry on ConnectionError."""
    from dashscope import VideoSynthesis

    server.routes["create"] = [Answer(fault="reset"), created()]
    response = VideoSynthesis.async_call(
        model="wan2.6-i2v-flash", prompt="p", img_url="https://x/a.jpg", api_key=API_KEY, base_address=server.base_url
    )
    assert response.status_code == 200 and server.hits["create"] == 2


async def test_no_answer_in_time_is_submission_unknown(server, wide_photo) -> None:
    server.routes["create"] = [Answer(fault="hang")]
    with pytest.raises(SubmissionUnknown):
        await provider_for(server, request_timeout=0.3).submit(request(wide_photo))
    assert server.hits["create"] == 1


async def test_a_refused_connection_is_transient_because_nothing_was_sent(wide_photo) -> None:
    provider = provider_for(type("E", (), {"base_url": f"http://127.0.0.1:{closed_port()}/api/v1"})())
    with pytest.raises(TransientError, match="no task was created") as caught:
        await provider.submit(request(wide_photo))
    assert type(caught.value) is TransientError


async def test_a_missing_key_is_an_authentication_error_before_any_call(server, wide_photo, monkeypatch) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    with pytest.raises(AuthenticationError, match="DASHSCOPE_API_KEY"):
        await provider_for(server).submit(request(wide_photo))
    assert server.hits["create"] == 0


# -- through the emulator ------------------------------------------------------------------


@pytest.mark.dashscope_emulator(api_keys={"sk-the-right-one"}, render_mode="still")
async def test_a_wrong_key_is_refused_by_the_service(dashscope_emulator, wide_photo) -> None:
    with pytest.raises(AuthenticationError) as caught:
        await provider_for(dashscope_emulator).submit(request(wide_photo))
    assert caught.value.code == "InvalidApiKey" and caught.value.status_code == 401
    assert API_KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("InternalError", ProviderFailed),
        ("InternalError.Algo", ProviderFailed),
        ("InvalidParameter", ProviderFailed),
        ("DataInspectionFailed", ContentRejected),
        ("IPInfringementSuspect", ContentRejected),
        ("Arrearage", QuotaExceeded),
    ],
)
async def test_failed_tasks_carry_the_providers_code_and_message(dashscope_emulator, wide_photo, code, kind) -> None:
    dashscope_emulator.set_faults(Faults(task_failed=1.0, failed_code=code))
    provider = provider_for(dashscope_emulator)
    job = await provider.submit(request(wide_photo))
    with pytest.raises(kind) as caught:
        await drive(provider, job)
    exc = caught.value
    assert type(exc) is kind
    assert (exc.code, exc.task_id) == (code, job.task_id)
    assert exc.request_id


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_an_expired_task_is_task_expired(dashscope_emulator, wide_photo) -> None:
    provider = provider_for(dashscope_emulator)
    job = await provider.submit(request(wide_photo))
    dashscope_emulator.advance(86_400 + 1)
    with pytest.raises(TaskExpired) as caught:
        await provider.poll(job)
    assert caught.value.code == "UNKNOWN" and caught.value.task_id == job.task_id
    assert "24 hours" in str(caught.value)
    with pytest.raises(TaskExpired):
        await provider.poll(_job("no-such-task"))


@pytest.mark.dashscope_emulator(render_mode="still", faults=Faults(create_429=1.0))
async def test_service_throttling_is_rate_limited(dashscope_emulator, wide_photo) -> None:
    with pytest.raises(RateLimited) as caught:
        await provider_for(dashscope_emulator).submit(request(wide_photo))
    assert caught.value.code == "Throttling.RateQuota"


assert SCALE > 0
