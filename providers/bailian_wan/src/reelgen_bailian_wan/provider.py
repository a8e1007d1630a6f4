"""`BailianWanProvider`: `wan2.6-i2v-flash` through the official dashscope SDK.

The core drives it (validate, submit, poll on `poll_delay`'s schedule, cancel) and does
everything else (retries, downloads, storage). What this class adds:

* the request mapping (`mapping`), the error taxonomy (`errors`) and the poll schedule
  (`polling`), each in its own module;
* `account_id`, naming the account whose limits the core's governor applies (the limits
  themselves are data in `capabilities`: this class keeps no limiter of its own);
* blocking SDK calls in daemon threads (`blocking`), each naming its endpoint and key
  (`sdk`), so instances with different endpoints coexist and no loop is captured;
* an `Endpoint` it is given (`endpoint`): the real service by default; the plugin factory
  passes the bundled emulator for `emulator = true`, so this class never imports it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from reelgen.contract import VideoRequest
from reelgen.errors import (
    AuthenticationError,
    ProviderError,
    ProviderFailed,
    SubmissionUnknown,
    TransientError,
)
from reelgen.images import ImageData, is_remote, read_image, to_data_uri
from reelgen.provider import JobStatus, ProviderJob
from reelgen.threads import run_blocking

from .capabilities import CAPABILITIES, MODEL, PROVIDER
from .config import WanConfig
from .endpoint import Endpoint, ServiceEndpoint
from .errors import Phase, error_for_failed_task, error_for_response, expired_task
from .mapping import build_call, resolve_tier, validate_request
from .polling import RunTimes, Schedule, TaskView, parse_server_time
from .results import succeeded_output

__all__ = ["BailianWanProvider"]

log = logging.getLogger("reelgen_bailian_wan")

T = TypeVar("T")

_SEED_MAX = CAPABILITIES.seed_range[1]
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp"}
#: Task views kept for scheduling; the oldest go first (abandoned jobs are never polled again).
_MAX_VIEWS = 2048
_STATES = {"PENDING": "queued", "SUSPENDED": "queued", "RUNNING": "running"}
#: Pages of 100 read from the task list when reconciling an ambiguous create.
_LIST_PAGES = 5
#: Seconds a temporary upload (upload = "oss") may take.
_UPLOAD_TIMEOUT = 120.0


class BailianWanProvider:
    """The `bailian_wan` provider. Build it with `reelgen_bailian_wan.create_provider(config)`."""

    name = PROVIDER
    capabilities = CAPABILITIES

    def __init__(self, config: WanConfig | None = None, *, endpoint: Endpoint | None = None) -> None:
        self.config = config or WanConfig()
        #: Where calls go: the configured service unless given another (the emulator, a test server).
        self.endpoint: Endpoint = endpoint if endpoint is not None else ServiceEndpoint(self.config)
        self.run_times = RunTimes(scale=self.config.clock_scale)
        self._schedule = Schedule(self.run_times)
        self._views: OrderedDict[str, TaskView] = OrderedDict()
        self._lock = threading.Lock()
        self._account_id: str | None = None

    @property
    def create_settle_seconds(self) -> float:
        """How long after a create was sent its task may still appear in the task list: the
        reply may be lost at our read timeout while the service goes on (plus a margin)."""
        return self.config.request_timeout + 10.0 * self.config.clock_scale

    def __repr__(self) -> str:
        return f"BailianWanProvider(region={self.config.region!r}, emulator={self.config.emulator})"

    @property
    def region(self) -> str:
        """The deployment this instance talks to: prices differ by region (`reelgen.pricing`)."""
        return self.config.region

    # -- validate ----------------------------------------------------------------------

    def validate(self, request: VideoRequest) -> list[str]:
        return validate_request(request, self.config)

    # -- endpoint and key --------------------------------------------------------------

    @property
    def account_id(self) -> str:
        """Whose limits the core's governor applies: a short sha256 of the base URL and key.

        DashScope counts limits per account; one key (on one endpoint) is the closest we can
        name it from here. Computed once, on first use; never the key itself, and not
        reversible to it. With `emulator = true` this starts the emulator (its URL is its port).
        """
        if self._account_id is None:
            base_url, api_key = self._endpoint()
            digest = hashlib.sha256(f"{base_url}\n{api_key}".encode()).hexdigest()
            self._account_id = digest[:16]
        return self._account_id

    def _endpoint(self) -> tuple[str, str]:
        """(base URL, API key) for the next call. The key is never stored on `self`."""
        return self.endpoint.resolve()

    def warm_up(self) -> None:
        """Import the dashscope SDK now (about 0.6 s), not in the first row's submit."""
        import dashscope  # noqa: F401
        from dashscope import VideoSynthesis  # noqa: F401

    async def aclose(self) -> None:
        await self.endpoint.aclose()

    # -- submit ------------------------------------------------------------------------

    async def submit(self, request: VideoRequest) -> ProviderJob:
        options = request.options_for(PROVIDER)
        tier, _ = resolve_tier(request)
        seed = request.seed if request.seed is not None else random.SystemRandom().randint(0, _SEED_MAX)
        base_url, api_key = self._endpoint()
        # The core holds the account's slot and submit token (reelgen.governor) around this call.
        with tempfile.TemporaryDirectory(prefix="reelgen-wan-") as scratch:
            image = await self._image_input(request, base_url=base_url, api_key=api_key, scratch=Path(scratch))
            call = build_call(request, seed=seed, image=image, tier=tier.name)
            if "audio_url" in call and not is_remote(call["audio_url"]):
                call["audio_url"] = await self._upload(call["audio_url"], base_url=base_url, api_key=api_key)
            response, submitted_at = await self._create(call, base_url=base_url, api_key=api_key)
        task_id = self._created_task_id(response)
        view = TaskView(submitted_at=submitted_at, duration=int(request.duration), tier=tier.name)
        self._remember(task_id, view)
        return ProviderJob(
            provider=PROVIDER,
            model=MODEL,
            task_id=task_id,
            submitted_at=submitted_at,
            seed=seed,
            data={
                "resolution": tier.name,
                "duration": int(request.duration),
                "audio": bool(options.get("audio", True)),
                "request_id": response.request_id or None,
            },
        )

    async def _image_input(self, request: VideoRequest, *, base_url: str, api_key: str, scratch: Path) -> str:
        """What goes in `img_url`: a URL as is, else a data URI, or an `oss://` upload."""
        reference = request.reference_image
        assert reference is not None  # required by the capabilities; checked by the core
        if is_remote(reference):
            return str(reference)
        image = await run_blocking(lambda: read_image(reference), name="read-image")
        if request.options_for(PROVIDER).get("upload", "inline") != "oss":
            return to_data_uri(image)
        return await self._upload(self._local_file(reference, image, scratch), base_url=base_url, api_key=api_key)

    @staticmethod
    def _local_file(reference: str | bytes, image: ImageData, scratch: Path) -> str:
        if isinstance(reference, str) and not reference.lower().startswith("data:"):
            return image.origin  # the resolved path (file:// and ~ already undone)
        path = scratch / ("reference" + _EXTENSIONS.get(image.format, ".img"))
        path.write_bytes(image.content)
        return str(path)

    async def _upload(self, path: str, *, base_url: str, api_key: str) -> str:
        from . import sdk

        def upload() -> str:
            return sdk.upload_file(
                path, model=MODEL, api_key=api_key, base_url=base_url, workspace=self.config.workspace
            )

        try:
            return await run_blocking(upload, timeout=max(_UPLOAD_TIMEOUT, self.config.request_timeout), name="upload")
        except asyncio.TimeoutError:
            raise TransientError("the temporary upload to DashScope timed out", provider=PROVIDER) from None
        except Exception as exc:  # noqa: BLE001 - classify whatever the SDK's upload raised
            text = str(exc)
            if "InvalidApiKey" in text:
                raise AuthenticationError(text, provider=PROVIDER, code="InvalidApiKey") from None
            raise TransientError(
                f"the temporary upload to DashScope failed: {type(exc).__name__}: {text}", provider=PROVIDER
            ) from None

    async def _create(self, call: dict[str, Any], *, base_url: str, api_key: str) -> tuple[Any, float]:
        """One create call. Classifies transport failures by whether a task can exist."""
        import requests

        from . import sdk

        guard = threading.Lock()
        state: dict[str, Any] = {"abandoned": False, "response": None}

        def create() -> Any:
            response = sdk.create_task(
                call,
                api_key=api_key,
                base_url=base_url,
                workspace=self.config.workspace,
                timeout=self.config.request_timeout,
            )
            with guard:
                state["response"] = response
                abandoned = state["abandoned"]
            if abandoned:
                self._cancel_orphan(response, base_url=base_url, api_key=api_key)
            return response

        try:
            response = await run_blocking(create, name="create")
        except asyncio.CancelledError:
            # Interrupted mid-create: if a task appears after all, cancel it (it is PENDING).
            with guard:
                state["abandoned"] = True
                finished = state["response"]
            if finished is not None:
                threading.Thread(
                    target=self._cancel_orphan,
                    args=(finished,),
                    kwargs={"base_url": base_url, "api_key": api_key},
                    daemon=True,
                ).start()
            raise
        except sdk.NotSent as exc:
            raise TransientError(
                f"could not connect to DashScope at {base_url} ({exc.__cause__ or exc}); no task was created",
                provider=PROVIDER,
            ) from None
        except (sdk.MaybeSent, requests.exceptions.Timeout) as exc:
            raise SubmissionUnknown(
                f"the create call to {base_url} was sent but no answer came back ({type(exc).__name__}); a "
                "billed task may exist: check the console or VideoSynthesis.list before submitting again",
                provider=PROVIDER,
            ) from None
        except Exception as exc:  # noqa: BLE001 - after sending, anything unexpected means "unknown"
            raise SubmissionUnknown(
                f"the create call failed in an unexpected way ({type(exc).__name__}: {exc}); a billed task "
                "may exist: check the console before submitting again",
                provider=PROVIDER,
            ) from None
        return response, time.time()

    def _refusal(self, response: Any, *, phase: Phase, task_id: str | None = None) -> ProviderError:
        """The reelgen error for a non-200 SDK response (a 429 carries its `retry_after`)."""
        return error_for_response(
            int(response.status_code),
            response.code,
            response.message,
            request_id=response.request_id,
            task_id=task_id,
            phase=phase,
            headers=response.headers,
        )

    def _created_task_id(self, response: Any) -> str:
        status = int(response.status_code)
        if status != 200:
            raise self._refusal(response, phase="create")
        output = response.output or {}
        task_id = output.get("task_id")
        if not task_id:
            raise SubmissionUnknown(
                "DashScope accepted the create call (HTTP 200) but sent no task id; a task may exist",
                provider=PROVIDER,
                request_id=response.request_id or None,
            )
        return str(task_id)

    def _cancel_orphan(self, response: Any, *, base_url: str, api_key: str) -> None:
        """Runs in a worker thread: a task created after its caller gave up is cancelled."""
        from . import sdk

        task_id = (response.output or {}).get("task_id") if response.status_code == 200 else None
        if not task_id:
            return
        try:
            answer = sdk.cancel_task(task_id, api_key=api_key, base_url=base_url, workspace=self.config.workspace)
            stopped = answer.status_code == 200
        except Exception:  # noqa: BLE001 - best effort, reported below
            stopped = False
        log.warning(
            "task %s was created after its submission was interrupted; %s",
            task_id,
            "it was cancelled" if stopped else "it could not be cancelled and may be billed",
        )

    # -- reconciliation --------------------------------------------------------------

    async def find_jobs(self, request: VideoRequest, *, since: float, until: float) -> list[ProviderJob] | None:
        """Tasks of this model created between `since` and `until` (Unix times), from the task
        list: the core adopts the one an ambiguous create made. The list rows carry no prompt,
        so the window and the model are the match; the core drops tasks it already knows."""
        import datetime

        from . import sdk

        zone = datetime.timezone(datetime.timedelta(hours=8))  # the service lists in Beijing time

        def compact(epoch: float) -> str:
            return datetime.datetime.fromtimestamp(epoch, zone).strftime("%Y%m%d%H%M%S")

        base_url, api_key = self._endpoint()
        tier, _ = resolve_tier(request)
        options = request.options_for(PROVIDER)
        found: list[ProviderJob] = []
        for page in range(1, _LIST_PAGES + 1):

            def fetch(page: int = page) -> Any:
                return sdk.list_tasks(
                    start_time=compact(math.floor(since)),
                    end_time=compact(math.ceil(until)),
                    model=MODEL,
                    page_no=page,
                    page_size=100,
                    api_key=api_key,
                    base_url=base_url,
                    workspace=self.config.workspace,
                )

            try:
                response = await run_blocking(fetch, timeout=self.config.request_timeout, name="list")
            except Exception as exc:  # noqa: BLE001 - a list we cannot read proves nothing
                raise TransientError(
                    f"the task list could not be read: {type(exc).__name__}", provider=PROVIDER
                ) from None
            if int(response.status_code) != 200:
                raise self._refusal(response, phase="query")
            output = dict(response.output or {})
            for row in output.get("data") or []:
                task_id = row.get("task_id")
                if not task_id or row.get("model_name") not in (None, MODEL):
                    continue
                created = float(row.get("gmt_create") or since * 1000) / 1000
                found.append(
                    ProviderJob(
                        provider=PROVIDER,
                        model=MODEL,
                        task_id=str(task_id),
                        submitted_at=created,
                        seed=request.seed,
                        data={
                            "resolution": tier.name,
                            "duration": int(request.duration),
                            "audio": bool(options.get("audio", True)),
                            "request_id": row.get("request_id") or None,
                        },
                    )
                )
            if page >= int(output.get("total_page") or 1):
                break
        return found

    # -- poll --------------------------------------------------------------------------

    async def poll(self, job: ProviderJob) -> JobStatus:
        from . import sdk

        view = self._view(job)
        base_url, api_key = self._endpoint()

        def fetch() -> Any:
            return sdk.fetch_task(job.task_id, api_key=api_key, base_url=base_url, workspace=self.config.workspace)

        response = await self._query(fetch, job, what="status query")
        now = time.time()
        if int(response.status_code) != 200:
            raise self._refusal(response, phase="query", task_id=job.task_id)
        output = dict(response.output or {})
        status = output.get("task_status")
        if not isinstance(status, str):
            raise TransientError(
                "DashScope answered the status query without a task_status",
                provider=PROVIDER,
                task_id=job.task_id,
                request_id=response.request_id or None,
            )
        view.observe(status, output, now=now)
        if status in _STATES:
            return JobStatus(state=_STATES[status], raw_status=status)  # type: ignore[arg-type]
        self._forget(job.task_id)
        if status == "SUCCEEDED":
            return self._succeeded(job, view, output, response)
        if status == "FAILED":
            raise error_for_failed_task(
                output.get("code"), output.get("message"), request_id=response.request_id, task_id=job.task_id
            )
        if status == "CANCELED":
            return JobStatus(state="cancelled", raw_status=status, message="the task was cancelled at DashScope")
        if status == "UNKNOWN":
            raise expired_task(job.task_id, response.request_id)
        raise ProviderFailed(
            f"DashScope reported an unrecognized task status {status!r}",
            provider=PROVIDER,
            task_id=job.task_id,
            request_id=response.request_id or None,
        )

    def _succeeded(self, job: ProviderJob, view: TaskView, output: dict[str, Any], response: Any) -> JobStatus:
        if not output.get("video_url"):
            raise ProviderFailed(
                "DashScope reported SUCCEEDED without a video_url",
                provider=PROVIDER,
                task_id=job.task_id,
                request_id=response.request_id or None,
            )
        run, queue = view.server_durations(output)
        if run is not None:
            self.run_times.add(duration=view.duration, tier=view.tier, run=run, queue=queue)
        finished_at = view.last_look_at or time.time()
        end_time = parse_server_time(output.get("end_time"))
        if end_time is not None and view.offset is not None:
            finished_at = end_time + view.offset
        usage = dict(response.usage) if response.usage is not None else None
        return JobStatus(
            state="succeeded",
            raw_status="SUCCEEDED",
            output=succeeded_output(
                output,
                usage,
                finished_at=finished_at,
                seed=job.seed,
                tier=job.data.get("resolution"),
                audio=job.data.get("audio"),
            ),
        )

    async def _query(self, func: Callable[[], T], job: ProviderJob, *, what: str) -> T:
        """A query or cancel (the core takes its rate token first); transport failures are transient."""
        import requests

        try:
            return await run_blocking(func, timeout=self.config.request_timeout, name="query")
        except asyncio.TimeoutError:
            raise TransientError(
                f"the {what} took longer than {self.config.request_timeout:g} s",
                provider=PROVIDER,
                task_id=job.task_id,
            ) from None
        except (requests.exceptions.RequestException, ValueError, KeyError, TypeError) as exc:
            # Connection resets, timeouts, and 200s whose body is not the JSON we expect.
            raise TransientError(
                f"the {what} failed: {type(exc).__name__}: {exc}", provider=PROVIDER, task_id=job.task_id
            ) from None

    # -- cancel ------------------------------------------------------------------------

    async def cancel(self, job: ProviderJob) -> bool:
        """Cancel a PENDING task. A RUNNING one cannot be: it will finish and be billed."""
        from . import sdk

        base_url, api_key = self._endpoint()

        def cancel() -> Any:
            return sdk.cancel_task(job.task_id, api_key=api_key, base_url=base_url, workspace=self.config.workspace)

        response = await self._query(cancel, job, what="cancel")
        status_code = int(response.status_code)
        if status_code == 200:
            self._forget(job.task_id)
            return True
        if response.code == "UnsupportedOperation":
            log.warning("%s", await self._why_not_cancelled(job))
            return False
        raise self._refusal(response, phase="cancel", task_id=job.task_id)

    async def _why_not_cancelled(self, job: ProviderJob) -> str:
        prefix = f"task {job.task_id} cannot be cancelled: DashScope only cancels PENDING tasks"
        try:
            status = await self.poll(job)
        except ProviderError as exc:
            return f"{prefix} ({type(exc).__name__}: {exc})"
        if status.raw_status == "RUNNING":
            return f"{prefix}, and it is already RUNNING: it will finish and be billed"
        if status.state == "succeeded":
            return f"{prefix}, and it has already SUCCEEDED (billed)"
        return f"{prefix} (it is {status.raw_status})"

    # -- schedule ----------------------------------------------------------------------

    def poll_delay(self, job: ProviderJob, attempt: int, elapsed: float) -> float:
        with self._lock:
            view = self._views.get(job.task_id)
        if view is None:
            # A job submitted elsewhere (resumed): look now, then schedule from what we see.
            self._view(job)
            return 0.0
        return self._schedule.delay(view)

    def _view(self, job: ProviderJob) -> TaskView:
        with self._lock:
            view = self._views.get(job.task_id)
            if view is None:
                view = TaskView(
                    submitted_at=job.submitted_at,
                    duration=float(job.data.get("duration", 5)),
                    tier=str(job.data.get("resolution", "1080P")),
                )
                self._views[job.task_id] = view
                self._trim_locked()
            return view

    def _remember(self, task_id: str, view: TaskView) -> None:
        with self._lock:
            self._views[task_id] = view
            self._trim_locked()

    def _trim_locked(self) -> None:
        while len(self._views) > _MAX_VIEWS:
            self._views.popitem(last=False)

    def _forget(self, task_id: str) -> None:
        """The task ended: it will not be scheduled again."""
        with self._lock:
            self._views.pop(task_id, None)
