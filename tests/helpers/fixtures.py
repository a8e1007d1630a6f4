"""Fixtures shared by pipeline, storage and CLI tests (imported by their conftest)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from reelgen.config import CacheConfig, Config, JobsConfig, StorageConfig
from reelgen.render import render_video


@pytest.fixture(scope="session")
def mp4_bytes() -> bytes:
    """A real 1 s, 10 fps, 64x64 H.264 MP4."""
    image = Image.new("RGB", (96, 96), (30, 120, 200))
    buffer = io.BytesIO()
    render_video(image, buffer, width=64, height=64, fps=10, duration=1, seed=1)
    return buffer.getvalue()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(
        storage=StorageConfig(url=str(tmp_path / "videos")),
        cache=CacheConfig(url=f"sqlite:///{tmp_path / 'cache.db'}"),
        jobs=JobsConfig(url=f"sqlite:///{tmp_path / 'jobs.db'}"),
        deadline=20,
    )


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (320, 240), (200, 120, 40)).save(path)
    return path
