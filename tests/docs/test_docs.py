"""Docs that cannot drift: hooks documented, quick start as promised, examples that run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reelgen import hookspecs

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
# A ```python block runs unless the line before it is this marker.
SKIP_MARKER = "<!-- no-run -->"


def python_blocks(path: Path) -> list[tuple[int, str]]:
    blocks = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() == "```python":
            start = index
            index += 1
            body = []
            while lines[index].strip() != "```":
                body.append(lines[index])
                index += 1
            if start == 0 or lines[start - 1].strip() != SKIP_MARKER:
                blocks.append((start + 1, "\n".join(body)))
        index += 1
    return blocks


def test_every_hookspec_is_documented():
    text = (ROOT / "docs" / "hooks.md").read_text()
    specs = [name for name in dir(hookspecs) if name.startswith("reelgen_")]
    assert specs, "no hookspecs found"
    missing = [name for name in specs if not re.search(rf"^## `{name}\(", text, re.MULTILINE)]
    assert missing == [], f"hooks missing from docs/hooks.md: {missing}"


def test_readme_quick_start_is_exactly_two_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = section.split("```", 2)[1]
    commands = [line for line in block.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


EXAMPLES = [(path, line, code) for path in DOCS for line, code in python_blocks(path)]


@pytest.mark.parametrize(
    ("path", "line", "code"), EXAMPLES, ids=[f"{p.relative_to(ROOT)}:{line}" for p, line, _ in EXAMPLES]
)
def test_python_examples_run(path, line, code, tmp_path):
    env = {
        **os.environ,
        "REELGEN_CACHE_URL": f"sqlite:///{tmp_path / 'cache.db'}",
        "REELGEN_JOBS_URL": f"sqlite:///{tmp_path / 'jobs.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, f"{path.name}:{line} failed:\n{done.stderr[-3000:]}"
