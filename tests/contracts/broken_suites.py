"""The contract suite, once per broken provider (run by test_selftest.py in a subprocess).

Not collected by a normal run (the name does not start with `test_`): every class here
is meant to fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reelgen_contracts import ProviderContract, Sandbox
from tests.contracts.broken import BROKEN, Defect
from tests.contracts.broken_preview import sandbox as preview_sandbox
from tests.contracts.fakeremote import FakeService


@pytest.fixture(scope="module")
def fake_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeService]:
    service = FakeService(Path(tmp_path_factory.mktemp("fake-service")))
    yield service
    service.close()


def _suite(name: str, defect: Defect) -> type[ProviderContract]:
    class Suite(ProviderContract):
        @pytest.fixture
        def provider_factory(self) -> Any:
            return defect.provider

        @pytest.fixture
        def sandbox(self, fake_service: FakeService, tmp_path: Path) -> Sandbox:
            if defect.sandbox == "preview":
                return preview_sandbox(tmp_path / "preview-service")
            return fake_service.sandbox()

        @pytest.fixture
        def extra_plugins(self) -> list[object]:
            return list(defect.plugins)

    Suite.__name__ = Suite.__qualname__ = f"Test_{name}"
    return Suite


for _name, _defect in BROKEN.items():
    globals()[f"Test_{_name}"] = _suite(_name, _defect)
