"""The cache key: stable across processes, sensitive to everything that changes the video,
blind to everything that does not (the image's path, other providers' options, size spelling)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reelgen import VideoRequest
from reelgen._cachekey import cache_key
from reelgen.serialization import to_json

PROVIDER, MODEL = "bailian_wan", "wan2.6-i2v-flash"


def key(request: VideoRequest, provider: str = PROVIDER, model: str = MODEL) -> str:
    return cache_key(request, provider=provider, model=model)


_KEYS_IN_CHILD = """
import json, sys
from reelgen import VideoRequest
from reelgen._cachekey import cache_key
from reelgen.serialization import from_json
for line in sys.stdin:
    item = json.loads(line)
    request = from_json(item["request"], VideoRequest)
    print(cache_key(request, provider=item["provider"], model=item["model"]))
"""


def keys_in_child(items: list[tuple[VideoRequest, str, str]], hash_seed: str) -> list[str]:
    lines = "".join(
        json.dumps({"request": to_json(request), "provider": provider, "model": model}) + "\n"
        for request, provider, model in items
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", _KEYS_IN_CHILD], input=lines, capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.split()


def test_key_is_a_sha256_hex_digest() -> None:
    value = key(VideoRequest(prompt="a cat surfing"))
    assert len(value) == 64 and set(value) <= set("0123456789abcdef")


def test_key_of_a_known_request_never_changes() -> None:
    # Pinned: a change here silently orphans every cache entry; bump KEY_VERSION instead.
    request = VideoRequest(
        prompt="waves at dusk", negative_prompt="blur", duration=5, fps=24, size="1280x720", seed=7,
        reference_image=b"\x89PNG fake", motion_strength=0.5, options={PROVIDER: {"audio": False}, "other": {"x": 1}},
    )  # fmt: skip
    assert key(request) == "257b54531488c2ad97472c1f3f0bae38b4e02f15c36871a1039dc889eb7648c7"


@settings(max_examples=min(settings().max_examples, 4))
@given(
    data=st.data(),
    hash_seed=st.integers(0, 2**32 - 1).map(str) | st.just("random"),
)
def test_key_is_the_same_in_another_process(requests_st: Any, data: st.DataObject, hash_seed: str) -> None:
    items = data.draw(
        st.lists(
            st.tuples(requests_st, st.sampled_from([PROVIDER, "preview", "p-1"]), st.text(min_size=1)),
            min_size=1,
            max_size=25,
        )
    )
    assert keys_in_child(items, hash_seed) == [cache_key(r, provider=p, model=m) for r, p, m in items]


@given(st.data())
def test_key_is_deterministic_and_ignores_option_order(requests_st: Any, data: st.DataObject) -> None:
    request = data.draw(requests_st)
    reordered = {name: dict(reversed(list(values.items()))) for name, values in reversed(list(request.options.items()))}
    assert key(request) == key(attrs.evolve(request, options=reordered)) == key(request)


# --- sensitive to every field ----------------------------------------------------------------------

other_values: dict[str, st.SearchStrategy[Any]] = {
    "prompt": st.text(min_size=1).filter(str.strip),
    "negative_prompt": st.none() | st.text(min_size=1).filter(str.strip),
    "duration": st.floats(min_value=0.01, max_value=1e6),
    "fps": st.floats(min_value=0.01, max_value=1e3),
    "size": st.builds(lambda w, h: f"{w}*{h}", st.integers(1, 16384), st.integers(1, 16384)),
    "seed": st.none() | st.integers(0, 2**63 - 1),
    "motion_strength": st.none() | st.floats(0.0, 1.0),
    "reference_image": st.none() | st.binary(min_size=1, max_size=32) | st.just("https://x.test/cat.png"),
}


@pytest.mark.parametrize("field", sorted(other_values))
@given(data=st.data())
def test_key_changes_with_every_request_field(requests_st: Any, data: st.DataObject, field: str) -> None:
    request = data.draw(requests_st)
    changed = attrs.evolve(request, **{field: data.draw(other_values[field])})
    assume(getattr(changed, field) != getattr(request, field))
    assert key(changed) != key(request)


@given(
    data=st.data(), values=st.dictionaries(st.text(max_size=8), st.integers() | st.text() | st.booleans(), min_size=1)
)
def test_key_changes_with_this_providers_options(requests_st: Any, data: st.DataObject, values: dict[str, Any]) -> None:
    request = data.draw(requests_st)
    assume(request.options_for(PROVIDER) != values)
    changed = attrs.evolve(request, options={**request.options, PROVIDER: values})
    assert key(changed) != key(request)


@given(data=st.data(), provider=st.text(min_size=1), model=st.text(min_size=1))
def test_key_changes_with_provider_and_model(requests_st: Any, data: st.DataObject, provider: str, model: str) -> None:
    request = data.draw(requests_st)
    if provider != PROVIDER:
        assert key(request, provider=provider) != key(request)
    if model != MODEL:
        assert key(request, model=model) != key(request)


@given(first=st.binary(min_size=1, max_size=64), second=st.binary(min_size=1, max_size=64))
def test_key_changes_with_image_content(first: bytes, second: bytes) -> None:
    assume(first != second)
    assert key(VideoRequest(prompt="p", reference_image=first)) != key(VideoRequest(prompt="p", reference_image=second))


def test_key_changes_when_the_file_behind_a_path_changes(tmp_path: Path, png: bytes, other_png: bytes) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(png)
    request = VideoRequest(prompt="p", reference_image=str(path))
    before = key(request)
    path.write_bytes(other_png)
    assert key(request) != before


# --- blind to what does not change the video -----------------------------------------------------

_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=12
)


@given(
    content=st.binary(min_size=1, max_size=256),
    name_a=_names,
    name_b=_names,
    prompt=st.text(min_size=1).filter(str.strip),
)
def test_key_depends_on_image_content_not_its_path_or_form(
    content: bytes, name_a: str, name_b: str, prompt: str
) -> None:
    assume(name_a not in (".", "..") and name_b not in (".", ".."))
    with tempfile.TemporaryDirectory() as directory:
        first = Path(directory) / "a" / name_a
        second = Path(directory) / "b b%20" / name_b
        for path in (first, second):
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(content)
        data_uri = "data:image/png;base64," + base64.b64encode(content).decode("ascii")
        forms = [content, str(first), first, str(second), first.as_uri(), second.as_uri(), data_uri]
        keys = {key(VideoRequest(prompt=prompt, reference_image=form)) for form in forms}
    assert len(keys) == 1


def test_file_uri_with_localhost_is_the_local_file(tmp_path: Path, png: bytes) -> None:
    path = tmp_path / "a cat.png"
    path.write_bytes(png)
    uri = "file://localhost" + path.as_uri()[len("file://") :]
    assert key(VideoRequest(prompt="p", reference_image=uri)) == key(VideoRequest(prompt="p", reference_image=png))


@given(
    data=st.data(),
    other=st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
    values=st.dictionaries(st.text(max_size=5), st.integers(), min_size=1),
)
def test_key_ignores_options_for_other_providers(
    requests_st: Any, data: st.DataObject, other: str, values: dict[str, int]
) -> None:
    assume(other != PROVIDER)
    request = data.draw(requests_st)
    changed = attrs.evolve(request, options={**request.options, other: values})
    assert key(changed) == key(request)


@given(width=st.integers(1, 16384), height=st.integers(1, 16384), separator=st.sampled_from(["x", "X", " x ", "×"]))
def test_size_spelling_does_not_change_the_key(width: int, height: int, separator: str) -> None:
    spelled = VideoRequest(prompt="p", size=f"{width}{separator}{height}")
    assert key(spelled) == key(VideoRequest(prompt="p", size=f"{width}*{height}"))


def test_equal_values_give_equal_keys() -> None:
    assert key(VideoRequest(prompt="p", duration=5, fps=24)) == key(VideoRequest(prompt="p", duration=5.0, fps=24.0))
    assert key(VideoRequest(prompt="p", motion_strength=-0.0)) == key(VideoRequest(prompt="p", motion_strength=0.0))
    assert key(VideoRequest(prompt="p", negative_prompt=" ")) == key(VideoRequest(prompt="p"))
    tupled = VideoRequest(prompt="p", options={PROVIDER: {"steps": (1, 2)}})
    assert key(tupled) == key(VideoRequest(prompt="p", options={PROVIDER: {"steps": [1, 2]}}))


def test_image_digest_argument_is_used_instead_of_reading(png: bytes) -> None:
    request = VideoRequest(prompt="p", reference_image="/no/such/file.png")
    assert cache_key(request, provider=PROVIDER, model=MODEL, image_digest="sha256:abc") != cache_key(
        request, provider=PROVIDER, model=MODEL, image_digest="sha256:abd"
    )
