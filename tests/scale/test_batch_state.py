"""The queue's bookkeeping in Redis: each row sent once, one live check, one outcome, a waiting room."""

from __future__ import annotations

from reelgen.cluster.batchstate import BatchState, WaitingRoom


def test_a_row_is_sent_once_and_its_outcome_written_once(redis_url):
    state = BatchState(redis_url, "reelgen", "b1")
    assert state.mark_sent("r1") and not state.mark_sent("r1")
    assert state.finish("r1", {"id": "r1", "state": "succeeded"})
    assert not state.finish("r1", {"id": "r1", "state": "failed"})  # a redelivery cannot overwrite it
    assert state.done() == {"r1": {"id": "r1", "state": "succeeded"}}


def test_only_the_live_check_of_a_row_moves_it_on(redis_url):
    state = BatchState(redis_url, "reelgen", "b2")
    assert state.advance("r1", 0)  # the submit schedules check 1
    assert not state.advance("r1", 0)  # a redelivered submit schedules nothing
    assert state.advance("r1", 1) and not state.advance("r1", 1)  # a duplicate of check 1 drops itself
    assert state.seq("r1") == 2


def test_a_row_whose_job_never_existed_starts_over_a_bounded_number_of_times(redis_url):
    state = BatchState(redis_url, "reelgen", "b3")
    state.set_job("r1", "j-0123456789abcdef0123")
    state.advance("r1", 0)
    assert not state.restart("r1", 7, limit=2)  # a stale check cannot restart it
    assert state.restart("r1", 1, limit=2) and state.job("r1") is None and state.seq("r1") == 0
    state.advance("r1", 0)
    assert state.restart("r1", 1, limit=2)
    state.advance("r1", 0)
    assert not state.restart("r1", 1, limit=2)  # no endless loop


def test_the_waiting_room_hands_out_the_oldest_row_once(redis_url):
    room = WaitingRoom(redis_url, "reelgen", "bailian_wan/acct")
    room.park({"row": "late"}, at=20.0)
    room.park({"row": "early"}, at=10.0)
    room.park({"row": "early"}, at=30.0)  # parked again: still one entry, still its first place
    assert len(room) == 2
    assert room.take() == {"row": "early"} and room.take() == {"row": "late"} and room.take() is None


def test_only_one_copy_of_a_row_s_submit_runs_at_once(redis_url):
    state = BatchState(redis_url, "reelgen", "b4")
    first = state.claim_submit("r1", ttl=30)
    assert first is not None and state.claim_submit("r1", ttl=30) is None
    state.release_submit("r1", "not-the-holder")  # only the holder lets go
    assert state.claim_submit("r1", ttl=30) is None
    state.release_submit("r1", first)
    assert state.claim_submit("r1", ttl=30) is not None


def test_a_claim_whose_holder_was_killed_on_this_machine_is_taken_over_at_once(redis_url):
    import json
    import socket
    import subprocess
    import sys

    import redis

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    state = BatchState(redis_url, "reelgen", "b5")
    held = json.dumps({"token": "x", "host": socket.gethostname(), "pid": dead_pid, "started": None})
    redis.Redis.from_url(redis_url).set("reelgen:batch:b5:submitting:r1", held, px=60_000)
    assert state.claim_submit("r1", ttl=30) is not None  # not after its 60 s: now
    assert state.claim_submit("r1", ttl=30) is None  # and we hold it
