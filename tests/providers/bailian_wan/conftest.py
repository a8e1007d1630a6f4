"""Fixtures for the bailian_wan tests (helpers live in `helpers.py`).

Every test that talks to the service goes through the real dashscope SDK to a real
emulator (the `dashscope_emulator` fixture) or, for replies the emulator does not make, to
a small real HTTP server on loopback (`wire.py`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.providers.bailian_wan.helpers import API_KEY, jpeg


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A 4:3 JPEG."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg())
    return path


@pytest.fixture
def wide_photo(tmp_path: Path) -> Path:
    """A 16:9 JPEG, like the default size 1280*720."""
    path = tmp_path / "wide.jpg"
    path.write_bytes(jpeg((480, 270)))
    return path


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DASHSCOPE_API_KEY", API_KEY)
    return API_KEY
