"""The error tree: the type says whose fault it is, the exit code follows, and no secret leaks."""

from __future__ import annotations

import pickle
import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

import reelgen
from reelgen import errors
from reelgen.errors import (
    AuthenticationError,
    Cancelled,
    GenerationTimeout,
    ProviderError,
    RateLimited,
    ReelgenError,
    StrictWarningError,
    TransientError,
    ValidationError,
    redact,
)

ERROR_CLASSES = {name: getattr(errors, name) for name in errors.__all__ if name != "redact"}


def drawn_tree() -> dict[str, tuple[str | None, int | None]]:
    """Parse the tree in errors.py's docstring: class name -> (parent name, exit code drawn)."""
    tree: dict[str, tuple[str | None, int | None]] = {}
    stack: list[tuple[int, str]] = []
    block = (errors.__doc__ or "").split("```")[1]
    for line in block.strip().splitlines():
        match = re.match(r"^([\s│├└─]*)([A-Z]\w+)", line)
        assert match, line
        depth, name = len(match.group(1)), match.group(2)
        exit_code = re.search(r"\(exit (\d+)\)", line)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        tree[name] = (stack[-1][1] if stack else None, int(exit_code.group(1)) if exit_code else None)
        stack.append((depth, name))
    return tree


TREE = drawn_tree()


def drawn_exit_code(name: str) -> int | None:
    """The exit code drawn for `name` or its nearest ancestor."""
    while name is not None:
        parent, code = TREE[name]
        if code is not None:
            return code
        name = parent  # type: ignore[assignment]
    return None


def test_the_tree_draws_every_error_class() -> None:
    assert set(TREE) == set(ERROR_CLASSES)


@pytest.mark.parametrize("name", sorted(ERROR_CLASSES))
def test_each_class_sits_where_the_tree_draws_it(name: str) -> None:
    parent, _ = TREE[name]
    cls = ERROR_CLASSES[name]
    if parent is None:
        assert cls is ReelgenError and issubclass(cls, Exception)
    else:
        assert ERROR_CLASSES[parent] in cls.__bases__


@pytest.mark.parametrize("name", sorted(n for n in ERROR_CLASSES if drawn_exit_code(n) is not None))
def test_exit_code_matches_the_tree(name: str) -> None:
    assert ERROR_CLASSES[name].exit_code == drawn_exit_code(name)


def test_exit_codes_are_the_documented_ones() -> None:
    # product.md: 2 invalid request or usage, 3 provider refused, 4 failure or timeout, 130 interrupted.
    assert {cls.exit_code for cls in ERROR_CLASSES.values()} == {2, 3, 4, 130}
    assert ValidationError("x").exit_code == 2 and StrictWarningError(["w"]).exit_code == 2
    assert AuthenticationError("x").exit_code == 3 and RateLimited("x").exit_code == 4
    assert GenerationTimeout("x").exit_code == 4 and Cancelled("x").exit_code == 130


def test_validation_error_is_a_value_error_with_a_field() -> None:
    error = ValidationError("seed must be a whole number", field="seed")
    assert isinstance(error, ValueError) and error.field == "seed" and str(error) == "seed must be a whole number"
    assert ValidationError("whole request").field is None


def test_provider_error_carries_what_the_provider_said() -> None:
    error = ProviderError(
        "Arrearage", provider="bailian_wan", code="Arrearage", request_id="req-1", task_id="t-1", status_code=400
    )
    assert (error.provider, error.code, error.request_id, error.task_id, error.status_code) == (
        "bailian_wan", "Arrearage", "req-1", "t-1", 400,
    )  # fmt: skip
    assert str(error) == "Arrearage (provider=bailian_wan, code=Arrearage, http=400, task_id=t-1, request_id=req-1)"
    assert str(ProviderError("plain")) == "plain"


def test_transient_error_keeps_retry_after() -> None:
    error = RateLimited("slow down", retry_after=2.5, provider="p", status_code=429)
    assert isinstance(error, TransientError) and error.retry_after == 2.5 and error.status_code == 429


def test_timeout_and_cancel_carry_the_job() -> None:
    assert GenerationTimeout("late", job_id="p:t").job_id == "p:t"
    cancelled = Cancelled("stopped", job_id="p:t", remote_cancelled=True)
    assert cancelled.job_id == "p:t" and cancelled.remote_cancelled


@pytest.mark.parametrize(
    "error",
    [
        ValidationError("seed must be a whole number", field="seed"),
        StrictWarningError(["fps: 24 asked, 30 given", "seed: not sent"]),
        ProviderError("Arrearage", provider="p", code="Arrearage", request_id="r", task_id="t", status_code=400),
        RateLimited("slow down", retry_after=2.0, provider="p"),
        GenerationTimeout("late", job_id="p:t"),
        Cancelled("stopped", job_id="p:t", remote_cancelled=True),
        errors.IntegrityError("not an MP4"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_survive_pickling(error: ReelgenError) -> None:
    # Errors cross process boundaries (process pools, xdist workers) by pickle.
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error) and vars(copy) == vars(error)


def test_every_error_is_exported_from_the_package() -> None:
    for name, cls in ERROR_CLASSES.items():
        assert getattr(reelgen, name) is cls


# --- secrets -------------------------------------------------------------------------------------

dashscope_keys = st.from_regex(r"sk-[0-9a-f]{32}", fullmatch=True)
tokens = st.text(alphabet=string.ascii_letters + string.digits + "-._~+/", min_size=8, max_size=60).map(
    lambda t: t + "=="
)
#: Text around a secret; ends in a non-letter so the key is not glued to a word ("ask-...").
surroundings = st.text(max_size=40).filter(lambda t: not t or not t[-1].isalpha())


@given(key=dashscope_keys, before=surroundings, after=st.text(alphabet=" .,;:!?)\"'\n", max_size=20))
def test_redact_removes_api_keys(key: str, before: str, after: str) -> None:
    cleaned = redact(before + key + after)
    assert key not in cleaned and key[3:] not in cleaned and "***" in cleaned


@given(
    token=tokens, scheme=st.sampled_from(["Bearer", "bearer", "BEARER"]), before=st.text(" :;,{}\"'\n<>", max_size=30)
)
def test_redact_removes_bearer_tokens(token: str, scheme: str, before: str) -> None:
    cleaned = redact(f"{before}Authorization: {scheme} {token}")
    assert token not in cleaned and token.rstrip("=") not in cleaned
    assert cleaned.endswith(f"{scheme} ***")


@given(secret=st.text(min_size=6, max_size=40).filter(str.strip), text=st.text(max_size=40))
def test_redact_removes_secrets_it_is_given(secret: str, text: str) -> None:
    assert secret not in redact(f"{text}{secret}{text}", secret, None)


@pytest.mark.parametrize(
    "text, secret",
    [
        ('{"api_key": "abcdef123456"}', "abcdef123456"),
        ("api-key=abcdef123456&x=1", "abcdef123456"),
        ("APIKEY: abcdef123456", "abcdef123456"),
        ("url?auth=%20sk-0123456789abcdef", "sk-0123456789abcdef"),
        ("key_sk-0123456789abcdef", "sk-0123456789abcdef"),
    ],
)
def test_redact_shapes(text: str, secret: str) -> None:
    assert secret not in redact(text)


@pytest.mark.parametrize("text", ["task-0123456789 failed", "disk-encryption enabled", "InvalidParameter: size"])
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


@given(key=dashscope_keys, before=surroundings, field=st.sampled_from(["message", "code", "request_id", "task_id"]))
def test_provider_errors_never_show_a_key(key: str, before: str, field: str) -> None:
    values = {"message": "failed", "code": "InvalidApiKey", "request_id": "r-1", "task_id": "t-1"}
    values[field] = f"{before}{key} is invalid"
    message = values.pop("message")
    error = ProviderError(message, provider="bailian_wan", **values)
    assert key not in str(error) and key not in repr(error) and key not in error.provider_message
    assert all(key not in str(arg) for arg in error.args)


def test_subclasses_redact_too() -> None:
    key = "sk-" + "ab" * 16
    for cls in (AuthenticationError, RateLimited, errors.ProviderFailed, errors.SubmissionUnknown):
        assert key not in str(cls(f"Invalid key {key}", provider="p"))
