"""`reelgen`'s public face is what the docs promise, every name resolves, and importing it is light.

Modelled on httpx's `tests/test_exported_members.py`.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import types

import pytest

import reelgen
from reelgen import errors

#: product.md, "Python API".
PROMISED = {"VideoRequest", "VideoResult", "generate", "agenerate", "submit", "resume", "providers", "hookimpl"}
ERRORS = set(errors.__all__) - {"redact"}

#: The whole public surface. Adding a name is a product decision: change product.md and this list.
EXPECTED = [
    "SCHEMA_VERSION", "AuthenticationError", "BaseProvider", "Cancelled", "Capabilities", "Config", "ConfigError",
    "ContentRejected", "DeliveryFailed", "Event", "GenerationTimeout", "IntegrityError", "Job", "JobStatus",
    "OptionSpec", "PluginError", "Provider", "ProviderError", "ProviderFailed", "ProviderInfo", "ProviderJob",
    "ProviderOutput", "ProviderRefused", "QuotaExceeded", "RateLimited", "ReelgenError", "ResolutionTier",
    "StorageError", "StrictWarningError", "SubmissionUnknown", "TaskExpired", "TooLarge", "TransientError",
    "ValidationError", "VideoRequest", "VideoResult", "__version__", "abatch", "agenerate", "batch", "generate",
    "hookimpl", "json_schema", "load_config", "providers", "request_key", "resume", "submit", "validate",
]  # fmt: skip

#: Names the package module holds for its own use (imports), not exported.
IMPLEMENTATION = {"annotations"}


def test_all_is_what_the_docs_promise() -> None:
    assert set(reelgen.__all__) >= PROMISED
    assert set(reelgen.__all__) >= ERRORS
    assert sorted(reelgen.__all__) == sorted(EXPECTED)
    assert len(reelgen.__all__) == len(set(reelgen.__all__))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_exported_name_resolves(name: str) -> None:
    value = getattr(reelgen, name)
    assert value is not None
    if name in ERRORS:
        assert value is getattr(errors, name)
    if not name.startswith("_") and not name.isupper():
        owner = getattr(value, "__module__", "")
        assert owner.startswith("reelgen") or name == "hookimpl", (name, owner)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from reelgen import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(EXPECTED)


def test_every_public_member_is_exported() -> None:
    public = {
        name
        for name, value in vars(reelgen).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name not in IMPLEMENTATION
    }
    assert public <= set(reelgen.__all__)


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        reelgen.nope  # noqa: B018


def test_version_matches_the_distribution() -> None:
    assert reelgen.__version__ == importlib.metadata.version("reelgen")


_HEAVY = ("av", "httpx", "dashscope", "reelgen_bailian_wan", "reelgen_preview")


def test_import_reelgen_is_light() -> None:
    code = (
        "import json, sys, reelgen\n"
        "reelgen.VideoRequest(prompt='p'); reelgen.json_schema(); reelgen.ValidationError\n"
        f"print(json.dumps([m for m in {_HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


#: The modules a provider, a plugin or the contract kit may import (documented in
#: docs/writing-a-provider.md, "What a provider may import"); the rest of the core is
#: private by name (`reelgen._pipeline`, `reelgen._store`, ...) and may change at any time.
PROVIDER_FACE = {
    "reelgen",
    "reelgen.capabilities",
    "reelgen.config",
    "reelgen.contract",
    "reelgen.download",
    "reelgen.errors",
    "reelgen.events",
    "reelgen.governor",
    "reelgen.hookspecs",
    "reelgen.images",
    "reelgen.jobs",
    "reelgen.journal",
    "reelgen.plugins",
    "reelgen.pricing",
    "reelgen.probe",
    "reelgen.provider",
    "reelgen.render",
    "reelgen.serialization",
    "reelgen.threads",
    "reelgen.uris",
    "reelgen.validation",
}


@pytest.mark.parametrize("module", sorted(PROVIDER_FACE - {"reelgen"}))
def test_every_face_module_declares_what_it_exports(module: str) -> None:
    imported = importlib.import_module(module)
    assert isinstance(imported.__all__, list) and imported.__all__, module
    for name in imported.__all__:
        assert getattr(imported, name) is not None, (module, name)


def test_first_party_plugins_import_only_the_face() -> None:
    """The providers and the kit import the core the way a third-party plugin must."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sources = [*root.glob("providers/*/src/**/*.py"), *root.glob("contracts/src/**/*.py")]
    assert sources
    outside = set()
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if (name == "reelgen" or name.startswith("reelgen.")) and name not in PROVIDER_FACE:
                    outside.add(f"{source.relative_to(root)}: {name}")
    assert not outside, sorted(outside)
