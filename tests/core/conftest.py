"""Strategies and real images shared by the tests of the core's pure modules.

Hypothesis strategies are handed out by session fixtures (drawn with `st.data()`), so the
test modules share one definition of "a valid request" without importing each other.
"""

from __future__ import annotations

import io
import string
from typing import Any

import pytest
from hypothesis import strategies as st
from PIL import Image

from reelgen import VideoRequest, VideoResult

MAX_SEED = 2**63 - 1
SIZE_SEPARATORS = ("*", "x", "X", "×", " * ", " x ", " X ")

#: Names usable as an options namespace (a provider name).
provider_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,15}", fullmatch=True)

#: Any JSON value (finite floats only: JSON has no NaN).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)

option_maps = st.dictionaries(
    provider_names, st.dictionaries(st.text(max_size=12), json_values, max_size=4), max_size=3
)

positive_numbers = st.floats(min_value=0, exclude_min=True, allow_nan=False, allow_infinity=False) | st.integers(
    min_value=1, max_value=10**9
)
prompts = st.text(min_size=1, max_size=200).filter(lambda s: s.strip() != "")


@st.composite
def sizes(draw: st.DrawFn, max_side: int = 16384) -> tuple[str, int, int]:
    """A size in any accepted spelling, with the (width, height) it means."""
    width = draw(st.integers(1, max_side))
    height = draw(st.integers(1, max_side))
    separator = draw(st.sampled_from(SIZE_SEPARATORS))
    pad = draw(st.sampled_from(("", " ", "\t")))
    return f"{pad}{width}{separator}{height}{pad}", width, height


remote_urls = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}",
    st.sampled_from(("https", "http", "oss", "HTTPS")),
    st.from_regex(r"[a-z][a-z0-9\-]{0,20}(\.[a-z]{2,5}){1,2}", fullmatch=True),
    st.text(alphabet=string.ascii_letters + string.digits + "/._-%", max_size=30),
)

reference_images = st.none() | st.binary(min_size=1, max_size=64) | remote_urls


def video_requests(images: st.SearchStrategy[Any] = reference_images) -> st.SearchStrategy[VideoRequest]:
    return st.builds(
        VideoRequest,
        prompt=prompts,
        negative_prompt=st.none() | st.text(max_size=80),
        duration=positive_numbers,
        fps=positive_numbers,
        size=sizes().map(lambda s: s[0]),
        seed=st.none() | st.integers(0, MAX_SEED),
        reference_image=images,
        motion_strength=st.none() | st.floats(0.0, 1.0),
        options=option_maps,
    )


video_results = st.builds(
    VideoResult,
    video_url=st.text(min_size=1, max_size=60),
    duration=st.floats(min_value=0, exclude_min=True, allow_nan=False, allow_infinity=False),
    fps=st.floats(min_value=0, exclude_min=True, allow_nan=False, allow_infinity=False),
    seed=st.none() | st.integers(0, MAX_SEED),
    size=st.builds(lambda w, h: f"{w}*{h}", st.integers(1, 16384), st.integers(1, 16384)),
    provider=provider_names,
    model=st.text(min_size=1, max_size=20),
    sha256=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    bytes=st.integers(1, 2**40),
    task_id=st.none() | st.text(max_size=40),
    source_url=st.none() | remote_urls,
    expires_at=st.none() | st.datetimes().map(lambda d: d.isoformat()),
    cached=st.booleans(),
    warnings=st.lists(st.text(max_size=60), max_size=4),
    usage=st.dictionaries(st.text(max_size=10), json_values, max_size=4),
)


@pytest.fixture(scope="session")
def requests_st() -> st.SearchStrategy[VideoRequest]:
    """Valid requests: every field, every accepted spelling, images as bytes or remote URLs."""
    return video_requests()


@pytest.fixture(scope="session")
def results_st() -> st.SearchStrategy[VideoResult]:
    return video_results


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (32, 24), mode: str = "RGB", **save: Any) -> bytes:
    """A real, textured image encoded by Pillow."""
    noise = Image.effect_noise(size, 64).convert(mode)
    buffer = io.BytesIO()
    noise.save(buffer, fmt, **save)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def make_image() -> Any:
    """`make_image(fmt, size, mode, **save)`: real image bytes made by Pillow."""
    return image_bytes


@pytest.fixture(scope="session")
def png() -> bytes:
    return image_bytes("PNG")


@pytest.fixture(scope="session")
def other_png() -> bytes:
    return image_bytes("PNG", size=(24, 32))
