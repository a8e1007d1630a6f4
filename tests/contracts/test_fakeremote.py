"""The suite passes a provider that honours the contract in full: faults, cancel, resume, options.

`FakeRemoteProvider` is what the broken providers of the self-test are built from, so
this is also the control: each broken one differs from it in one thing only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reelgen_contracts import ProviderContract, Sandbox
from tests.contracts.fakeremote import FakeRemoteProvider, FakeService


@pytest.fixture(scope="module")
def fake_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeService]:
    service = FakeService(Path(tmp_path_factory.mktemp("fake-service")))
    yield service
    service.close()


class TestFakeRemoteContract(ProviderContract):
    @pytest.fixture
    def provider_factory(self) -> type[FakeRemoteProvider]:
        return FakeRemoteProvider

    @pytest.fixture
    def sandbox(self, fake_service: FakeService) -> Sandbox:
        return fake_service.sandbox()
