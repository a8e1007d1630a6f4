"""The kit's own parts: exported names, overrides, call counting, the billing guard, settings."""

from __future__ import annotations

import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

import reelgen_contracts
from reelgen import Provider
from reelgen_contracts import BillingGuardError, CountingProvider, ProviderContract, SocketAudit, override
from reelgen_contracts._harness import Harness
from reelgen_contracts._provider_suite import _parse
from reelgen_contracts.strategies import Budget
from reelgen_contracts.suite import EXAMPLES, _settings
from reelgen_contracts.witnesses import is_loopback
from tests.contracts.fakeremote import FakeRemoteProvider

ROOT = Path(__file__).resolve().parents[2]


def test_every_exported_name_is_documented() -> None:
    text = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")
    spans = re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text)
    for name in reelgen_contracts.__all__:
        assert hasattr(reelgen_contracts, name), name
        assert any(re.search(rf"\b{name}\b", span) for span in spans), f"{name} is exported but not documented"


def test_every_suite_test_is_documented() -> None:
    text = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")
    tests = [name for name in dir(ProviderContract) if name.startswith("test_")]
    missing = [name for name in tests if f"`{name}`" not in text]
    assert not missing, f"suite tests missing from docs/contracts.md: {missing}"


def test_replacing_a_standard_test_without_a_reason_is_refused() -> None:
    with pytest.raises(TypeError, match="replaces a standard contract test without saying why"):

        class Sneaky(ProviderContract):
            def test_cancel_behaves_as_declared(self) -> None:
                pass


def test_an_override_says_why_and_can_skip() -> None:
    class Honest(ProviderContract):
        test_options_are_honoured = override("the sandbox cannot observe options")(None)

        @override("cancel is checked against the real queue in tests/providers")
        def test_cancel_behaves_as_declared(self) -> None:
            pass

    assert Honest.test_cancel_behaves_as_declared.__reelgen_override__.startswith("cancel is checked")
    with pytest.raises(pytest.skip.Exception, match="overridden: the sandbox cannot observe options"):
        Honest.test_options_are_honoured(Honest())
    with pytest.raises(ValueError, match="needs a reason"):
        override("  ")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("192.0.2.1", False),
        ("dashscope.aliyuncs.com", False),
        ("::ffff:8.8.8.8", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_socket_audit_sees_connections_from_any_thread() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.handle_request, daemon=True).start()
    port = server.server_address[1]
    with SocketAudit() as audit:
        worker = threading.Thread(target=lambda: socket.create_connection(("127.0.0.1", port), timeout=5).close())
        worker.start()
        worker.join()
    server.server_close()
    connects = [(c.host, c.port, c.loopback, c.thread) for c in audit.connections if c.kind == "connect"]
    assert connects == [("127.0.0.1", port, True, worker.name)]
    with SocketAudit() as quiet:
        pass
    assert len(quiet) == 0


def test_socket_audit_sees_datagrams_and_name_lookups() -> None:
    with SocketAudit() as audit:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"metrics:1|c", ("127.0.0.1", 8125))
        socket.getaddrinfo("localhost", 443)
        socket.gethostbyname("localhost")
        left, right = socket.socketpair()  # Unix sockets never leave the machine: not recorded
        left.send(b"x")
        left.close()
        right.close()
    kinds = [(c.kind, c.host, c.port) for c in audit.connections if c.thread == threading.current_thread().name]
    assert kinds[:3] == [("sendto", "127.0.0.1", 8125), ("lookup", "localhost", 443), ("lookup", "localhost", None)]


def test_the_billing_guard_refuses_connections_off_the_machine() -> None:
    with SocketAudit(refuse_remote=True) as audit, pytest.raises(BillingGuardError, match="--reelgen-allow-billing"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)  # TEST-NET-1: never routed anyway
    assert "192.0.2.1" in [c.host for c in audit.remote]


def test_the_billing_guard_refuses_datagrams_and_lookups_off_the_machine() -> None:
    with SocketAudit(refuse_remote=True), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(BillingGuardError, match=r"sendto to 192\.0\.2\.1:53"):
            sock.sendto(b"x", ("192.0.2.1", 53))
        with pytest.raises(BillingGuardError, match=r"name lookup of dashscope\.aliyuncs\.com"):
            socket.getaddrinfo("dashscope.aliyuncs.com", 443)
        socket.getaddrinfo("127.0.0.1", 443)  # numeric and loopback: no query leaves the machine


def _harness(tmp_path: Path, config: dict[str, str], *, allow: bool = False) -> Harness:
    return Harness(
        name="fakeremote",
        build=FakeRemoteProvider,
        provider_config=config,
        sandbox=None,
        workdir=tmp_path,
        allow_billing=allow,
        thorough=False,
        call_timeout=10,
        deadline=10,
        image_server=None,
        budget=Budget(),
    )


def test_a_billed_provider_may_only_run_against_loopback(tmp_path: Path) -> None:
    assert FakeRemoteProvider.capabilities.billed
    assert _harness(tmp_path, {"base_url": "http://127.0.0.1:9"}).billing_refusal() is None
    refusal = _harness(tmp_path, {"base_url": "https://video.example.com/api"}).billing_refusal()
    assert refusal is not None and "refusing to run the suite against 'fakeremote'" in refusal
    assert _harness(tmp_path, {"base_url": "https://video.example.com/api"}, allow=True).billing_refusal() is None


def test_the_counting_provider_is_a_provider(tmp_path: Path) -> None:
    counted = CountingProvider(FakeRemoteProvider({"base_url": "http://127.0.0.1:9"}))
    assert isinstance(counted, Provider)
    assert counted.name == "fakeremote" and counted.base_url == "http://127.0.0.1:9"
    assert counted.count() == 0


def test_thorough_runs_many_more_examples() -> None:
    for kind, (default, thorough) in EXAMPLES.items():
        quick = _settings(SimpleNamespace(thorough=False), kind)  # type: ignore[arg-type]
        slow = _settings(SimpleNamespace(thorough=True), kind)  # type: ignore[arg-type]
        assert (quick.max_examples, slow.max_examples) == (default, thorough)
        assert quick.derandomize and not slow.derandomize
        assert thorough >= 5 * default


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("3", 3), ("2.5", 2.5), ("cn-beijing", "cn-beijing"), ('"quoted"', "quoted")]
)
def test_reelgen_config_values_are_toml_or_text(text: str, value: object) -> None:
    assert _parse(text) == value
