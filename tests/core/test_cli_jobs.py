"""`reelgen jobs` and the money flags of `generate`, through the real bailian_wan provider and SDK.

Every test talks to the DashScope emulator on loopback and reads the emulator's own
record of the tasks it created (and so billed), so "one task" means one paid task.
"""

from __future__ import annotations

import hashlib
import json
import signal
from pathlib import Path

import pytest
from PIL import Image

from reelgen import _registry as registry
from reelgen.cli import main
from reelgen_bailian_wan.emulator import Faults
from tests.helpers.cli import cli_env, read_stderr_until, run_cli, start_cli, wait_for

PHOTO_ARGS = ("photo.jpg", "--prompt", "waves against a lighthouse", "--duration", "2", "--size", "1280*720")
GENERATE = ("generate", *PHOTO_ARGS)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dashscope_emulator) -> Path:
    """The CLI in this process, pointed at the emulator, with its files in tmp_path."""
    Image.effect_noise((480, 270), 40).convert("RGB").save(tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    for name, value in cli_env(dashscope_emulator, tmp_path).items():
        if name.startswith(("REELGEN_", "DASHSCOPE_")):
            monkeypatch.setenv(name, value)
    registry.clear_instances()
    yield tmp_path
    registry.clear_instances()


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def statuses(emulator) -> list[str]:
    return [task["status"] for task in emulator.tasks()]


@pytest.mark.dashscope_emulator(render_mode="still")
def test_no_wait_prints_the_job_id_and_jobs_resume_collects_stores_and_caches_it(
    workdir, capsys, dashscope_emulator
) -> None:
    code, out, err = run(capsys, *GENERATE, "--no-wait", "--json")
    assert code == 0, err
    submitted = json.loads(out)
    job_id = submitted["job_id"]
    assert job_id.startswith("bailian_wan:") and submitted["resume"] == f"reelgen jobs resume {job_id}"
    assert len(dashscope_emulator.tasks()) == 1

    code, out, err = run(capsys, "jobs", "list", "--json")
    assert code == 0, err
    [entry] = json.loads(out)
    assert entry["job_id"] == job_id and entry["state"] in ("queued", "running", "submitting")
    assert entry["request"]["prompt"] == "waves against a lighthouse"

    code, out, err = run(capsys, "jobs", "resume", job_id, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["task_id"] == job_id.split(":", 1)[1] and result["cached"] is False
    stored = Path(result["video_url"][len("file://") :])
    assert sha256(stored) == result["sha256"]

    # The resumed result is cached under the request's key: the same generate pays nothing more.
    code, out, err = run(capsys, *GENERATE, "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["cached"] is True and again["video_url"] == result["video_url"]
    assert len(dashscope_emulator.tasks()) == 1

    code, out, _ = run(capsys, "jobs", "list")
    [line] = out.strip().splitlines()
    assert line.startswith(f"{job_id}  succeeded  bailian_wan  ")
    assert str(stored) in line and '"waves against a lighthouse"' in line and "output_video_duration=2" in line

    code, out, _ = run(capsys, "jobs", "show", job_id)
    assert code == 0 and "state:" in out and "succeeded" in out and str(stored) in out
    assert result["sha256"] in out


@pytest.mark.dashscope_emulator(render_mode="still")
def test_jobs_resume_prints_exactly_what_generate_prints(workdir, capsys, dashscope_emulator) -> None:
    code, generated, err = run(capsys, *GENERATE, "--no-cache", "--json")
    assert code == 0, err
    job_id = "bailian_wan:" + json.loads(generated)["task_id"]
    code, resumed, err = run(capsys, "jobs", "resume", job_id, "--json")
    assert code == 0, err
    first, second = json.loads(generated), json.loads(resumed)
    assert first == second  # the same result object: same JSON shape, same values
    code, plain, _ = run(capsys, "jobs", "resume", job_id)
    assert code == 0 and plain.strip() == first["video_url"][len("file://") :]


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=100_000)
def test_jobs_cancel_stops_a_queued_task(workdir, capsys, dashscope_emulator) -> None:
    code, out, err = run(capsys, *GENERATE, "--no-wait")
    assert code == 0, err
    job_id = out.strip()
    code, out, err = run(capsys, "jobs", "cancel", job_id)
    assert code == 0, err
    assert "cancelled" in out and "will not bill" in out
    assert statuses(dashscope_emulator) == ["CANCELED"]
    code, out, _ = run(capsys, "jobs", "show", job_id, "--json")
    assert json.loads(out)["state"] == "cancelled"
    code, out, _ = run(capsys, "jobs", "cancel", job_id)
    assert code == 0 and "already cancelled" in out
    code, out, _ = run(capsys, "jobs", "list", "--state", "cancelled", "--json")
    assert [entry["job_id"] for entry in json.loads(out)] == [job_id]
    code, out, _ = run(capsys, "jobs", "list", "--state", "succeeded", "--state", "delivery_failed")
    assert code == 0 and out.strip() == "no jobs in state succeeded, delivery_failed"


@pytest.mark.dashscope_emulator(render_mode="still")
def test_output_cannot_be_combined_with_no_wait(workdir, capsys, dashscope_emulator) -> None:
    code, _, err = run(capsys, *GENERATE, "--no-wait", "--output", "clip.mp4")
    assert code == 2 and "--no-wait" in err
    assert dashscope_emulator.counters()["creates"] == 0


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=0, run_seconds=100_000)
def test_jobs_cancel_of_a_running_task_says_it_may_be_billed(workdir, capsys, dashscope_emulator) -> None:
    code, out, err = run(capsys, *GENERATE, "--no-wait")
    job_id = out.strip()
    wait_for(lambda: statuses(dashscope_emulator) == ["RUNNING"], what="the task to run")
    code, out, err = run(capsys, "jobs", "cancel", job_id)
    assert code == 4
    assert err.strip().endswith(f"reelgen jobs resume {job_id}") and "may finish and be billed" in err


@pytest.mark.dashscope_emulator(render_mode="still")
@pytest.mark.parametrize("command", ["show", "resume", "cancel"])
def test_job_ids_are_validated_before_any_call(workdir, capsys, dashscope_emulator, command) -> None:
    code, _out, err = run(capsys, "jobs", command, "bailian_wan:../../etc")
    assert code == 2 and "task id" in err and "Traceback" not in err
    counters = dashscope_emulator.counters()
    assert counters["creates"] == 0 and counters.get("queries", 0) == 0


@pytest.mark.dashscope_emulator(render_mode="still")
def test_an_unknown_job_id_is_named_with_the_journal(workdir, capsys) -> None:
    code, _, err = run(capsys, "jobs", "show", "bailian_wan:no-such-task")
    assert code == 2 and "no job 'bailian_wan:no-such-task'" in err and "jobs.db" in err


@pytest.mark.dashscope_emulator(render_mode="still")
@pytest.mark.parametrize("flag", ["--deadline", "--queue-timeout"])
@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf"])
def test_bad_deadlines_exit_2_with_a_validation_error(workdir, capsys, dashscope_emulator, flag, value) -> None:
    code, out, err = run(capsys, *GENERATE, flag, value)
    assert code == 2 and "ValidationError" in err and flag in err and out == ""
    assert dashscope_emulator.counters()["creates"] == 0


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=100_000)
def test_a_deadline_cancels_the_queued_task_and_ends_with_the_resume_command(
    workdir, capsys, dashscope_emulator
) -> None:
    code, out, err = run(capsys, *GENERATE, "--deadline", "3", "--json")
    assert code == 4, err
    error = json.loads(out)["error"]
    task_id = dashscope_emulator.tasks()[0]["task_id"]
    command = f"reelgen jobs resume bailian_wan:{task_id}"
    assert error["type"] == "GenerationTimeout" and error["resume"] == command
    assert err.strip().endswith(command)
    assert statuses(dashscope_emulator) == ["CANCELED"]


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=100_000)
def test_a_queue_timeout_cancels_a_job_the_provider_never_started(workdir, capsys, dashscope_emulator) -> None:
    code, _out, err = run(capsys, *GENERATE, "--queue-timeout", "2")
    assert code == 4, err
    assert statuses(dashscope_emulator) == ["CANCELED"]
    assert "reelgen jobs resume bailian_wan:" in err.strip().splitlines()[-1]


@pytest.mark.dashscope_emulator(render_mode="still")
def test_memory_storage_is_refused_before_any_paid_call(workdir, capsys, dashscope_emulator, monkeypatch) -> None:
    monkeypatch.setenv("REELGEN_STORAGE_URL", "memory://videos")
    code, _, err = run(capsys, *GENERATE)
    assert code == 2 and "memory://videos" in err and "not durable" in err
    assert dashscope_emulator.counters()["creates"] == 0


@pytest.mark.dashscope_emulator(render_mode="still")
def test_warnings_are_printed_before_the_submit(workdir, capsys, dashscope_emulator) -> None:
    Image.effect_noise((320, 240), 40).convert("RGB").save(workdir / "square.jpg")  # 4:3, not 16:9
    code, _out, err = run(capsys, "generate", "square.jpg", *PHOTO_ARGS[1:])
    assert code == 0, err
    lines = err.splitlines()
    warning = next(i for i, line in enumerate(lines) if line.startswith("warning: size"))
    task_id = dashscope_emulator.tasks()[0]["task_id"]
    submitted = next(i for i, line in enumerate(lines) if task_id in line)  # the progress line naming the job
    assert warning < submitted
    assert sum(line.startswith("warning: size") for line in lines) == 1  # once, not again at the end


@pytest.mark.dashscope_emulator(render_mode="still")
def test_output_copies_the_stored_video_and_never_overwrites_a_file(workdir, capsys, dashscope_emulator) -> None:
    code, out, err = run(capsys, *GENERATE, "--output", "clip.mp4")
    assert code == 0, err
    stored = Path(out.strip())
    assert sha256(workdir / "clip.mp4") == sha256(stored) and stored != workdir / "clip.mp4"
    (workdir / "mine.mp4").write_bytes(b"the user's own file")
    code, out, err = run(capsys, *GENERATE, "--no-cache", "--output", "mine.mp4")
    assert code == 2 and "never overwrites" in err
    assert (workdir / "mine.mp4").read_bytes() == b"the user's own file"
    assert len(dashscope_emulator.tasks()) == 1  # refused before paying


@pytest.mark.dashscope_emulator(render_mode="still")
def test_no_cache_neither_reads_nor_writes_the_cache(workdir, capsys, dashscope_emulator) -> None:
    code, out, err = run(capsys, *GENERATE, "--no-cache", "--json")
    assert code == 0, err
    code, out, _ = run(capsys, "cache", "list", "--json")
    assert code == 0 and json.loads(out) == []
    run(capsys, *GENERATE)  # cached now
    code, out, err = run(capsys, *GENERATE, "--no-cache", "--json")
    assert code == 0 and json.loads(out)["cached"] is False  # a new take, not the cached one
    assert len(dashscope_emulator.tasks()) == 3


@pytest.mark.dashscope_emulator(render_mode="still")
def test_a_corrupt_cache_is_named_and_cache_clear_moves_it_aside(workdir, capsys, dashscope_emulator) -> None:
    cache = workdir / "cache.db"
    cache.write_bytes(b"this is not a database, but it is the user's file" * 100)
    code, out, err = run(capsys, "cache", "list")
    assert code == 2 and str(cache) in err and "cache clear" in err and "Traceback" not in err
    code, out, err = run(capsys, "cache", "clear", "--yes")
    assert code == 0, err
    [moved] = workdir.glob("cache.db.corrupt-*")
    assert moved.read_bytes().startswith(b"this is not a database") and str(moved) in out
    code, out, _ = run(capsys, "cache", "list")
    assert code == 0 and "empty" in out


@pytest.mark.dashscope_emulator(render_mode="still")
def test_a_corrupt_journal_is_named_and_nothing_is_paid(workdir, capsys, dashscope_emulator) -> None:
    journal = workdir / "jobs.db"
    journal.write_bytes(b"garbage" * 1000)
    code, _, err = run(capsys, "jobs", "list")
    assert code == 2 and str(journal) in err and "Traceback" not in err
    code, _, err = run(capsys, *GENERATE)
    assert code == 2 and str(journal) in err and "Traceback" not in err
    assert dashscope_emulator.counters()["creates"] == 0


# -- other processes: kill -9 and signals while the task runs (and so cannot be cancelled) --


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=0, run_seconds=300)
def test_after_kill_9_jobs_resume_collects_the_orphan_without_paying_again(workdir, dashscope_emulator) -> None:
    env = cli_env(dashscope_emulator, workdir)
    process = start_cli(env, workdir, *GENERATE)
    task = wait_for(lambda: dashscope_emulator.tasks(), what="the task")[0]
    read_stderr_until(process, task["task_id"])
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)

    listed = run_cli(env, workdir, "jobs", "list", "--json")
    [entry] = json.loads(listed.stdout)
    assert entry["task_id"] == task["task_id"] and entry["resume"] is not None

    done = run_cli(env, workdir, "jobs", "resume", entry["ref"], "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["task_id"] == task["task_id"]
    again = run_cli(env, workdir, *GENERATE, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["cached"] is True
    assert len(dashscope_emulator.tasks()) == 1


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=0, run_seconds=300)
def test_sigterm_on_a_running_task_says_it_may_be_billed_and_resume_collects_it(workdir, dashscope_emulator) -> None:
    env = cli_env(dashscope_emulator, workdir)
    process = start_cli(env, workdir, *GENERATE)
    try:
        task = wait_for(lambda: dashscope_emulator.tasks(), what="the task")[0]
        read_stderr_until(process, task["task_id"])
        wait_for(lambda: statuses(dashscope_emulator) == ["RUNNING"], what="the task to run")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    job_id = f"bailian_wan:{task['task_id']}"
    assert process.returncode == 143
    assert err.strip().splitlines()[-1] == (
        f"interrupted by SIGTERM: the remote job {job_id} could not be cancelled and may still be billed; "
        f"collect the video with: reelgen jobs resume {job_id}"
    )
    done = run_cli(env, workdir, "jobs", "resume", job_id)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_file()
    assert statuses(dashscope_emulator) == ["SUCCEEDED"]


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=100_000)
def test_an_unresolved_unknown_blocks_the_same_request_until_force(
    workdir, capsys, dashscope_emulator, monkeypatch
) -> None:
    # A task for the same request that this journal does not know (another journal made it).
    monkeypatch.setenv("REELGEN_JOBS_URL", f"sqlite:///{workdir / 'elsewhere.db'}")
    code, _, err = run(capsys, *GENERATE, "--no-wait")
    assert code == 0, err
    monkeypatch.setenv("REELGEN_JOBS_URL", f"sqlite:///{workdir / 'jobs.db'}")
    # Our create makes a task but its reply is lost: two unclaimed tasks could be it, and
    # neither ends before the deadline (so neither can show whose prompt it ran).
    dashscope_emulator.script_faults("create_reply_5xx", times=1)
    code, out, err = run(capsys, *GENERATE, "--json", "--deadline", "5")
    assert code == 4, err
    error = json.loads(out)["error"]
    assert error["type"] == "SubmissionUnknown" and error["resume"].startswith("reelgen jobs resume j-")
    assert err.strip().endswith(error["resume"]) and "--force" in err
    assert len(dashscope_emulator.tasks()) == 2

    code, _, err = run(capsys, *GENERATE)  # the same request does not pay blindly
    assert code == 4 and "--force" in err and err.strip().endswith(error["resume"])
    assert len(dashscope_emulator.tasks()) == 2

    code, out, err = run(capsys, *GENERATE, "--force", "--no-wait")
    assert code == 0, err
    assert len(dashscope_emulator.tasks()) == 3

    code, out, _ = run(capsys, "jobs", "show", error["resume"].rsplit(" ", 1)[1], "--json")
    assert code == 0 and json.loads(out)["state"] == "unknown"


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=100_000)
def test_a_deadline_before_any_create_offers_nothing_to_resume(workdir, capsys, dashscope_emulator) -> None:
    (workdir / "reelgen.toml").write_text("[limits.bailian_wan]\nconcurrency = 1\n")
    code, _, err = run(capsys, *GENERATE, "--no-wait")
    assert code == 0, err  # its job holds the account's one slot
    other = ("generate", *PHOTO_ARGS[:2], "another shot", *PHOTO_ARGS[3:])
    code, out, err = run(capsys, *other, "--deadline", "2", "--json")
    assert code == 4, err
    error = json.loads(out)["error"]
    assert error["type"] == "GenerationTimeout" and "resume" not in error
    assert "no task was created" in err and "reelgen jobs resume" not in err
    assert len(dashscope_emulator.tasks()) == 1


@pytest.mark.dashscope_emulator(render_mode="still")
@pytest.mark.parametrize("url", ["nosuchproto://bucket/videos", "photo.jpg/videos"])
def test_unusable_storage_is_refused_before_paying(workdir, capsys, dashscope_emulator, monkeypatch, url) -> None:
    monkeypatch.setenv("REELGEN_STORAGE_URL", url)  # an unknown fsspec protocol; a folder under a file
    code, _, err = run(capsys, *GENERATE)
    assert code == 2 and "Traceback" not in err and url.split("/")[0] in err
    assert dashscope_emulator.counters()["creates"] == 0


@pytest.mark.dashscope_emulator(render_mode="still")
def test_jobs_resume_collects_a_job_the_journal_does_not_know(workdir, capsys, dashscope_emulator, monkeypatch) -> None:
    monkeypatch.setenv("REELGEN_JOBS_URL", "off")
    code, out, err = run(capsys, *GENERATE, "--no-wait")
    assert code == 0, err
    job_id = out.strip()
    code, out, err = run(capsys, "jobs", "list")
    assert code == 2 and "journal is off" in err
    code, out, err = run(capsys, "jobs", "resume", job_id, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["task_id"] == job_id.split(":", 1)[1]
    assert sha256(Path(result["video_url"][len("file://") :])) == result["sha256"]


@pytest.mark.dashscope_emulator(render_mode="still", faults=Faults(early_expiry=1.0))
def test_a_paid_job_that_could_not_be_delivered_is_named_and_cannot_be_cancelled(workdir, capsys) -> None:
    code, out, err = run(capsys, *GENERATE, "--json")
    assert code == 4, err
    error = json.loads(out)["error"]
    assert error["type"] == "DeliveryFailed" and error["resume"] == f"reelgen jobs resume {error['job_id']}"
    assert err.strip().endswith(error["resume"])
    code, out, _ = run(capsys, "jobs", "list", "--state", "delivery_failed", "--json")
    assert [entry["job_id"] for entry in json.loads(out)] == [error["job_id"]]
    code, _, err = run(capsys, "jobs", "cancel", error["job_id"])
    assert code == 4 and "already finished at the provider and is billed" in err
    assert err.strip().endswith(error["resume"])
