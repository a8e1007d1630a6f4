"""The production provider does not know its test double: `emulator = true` is the plugin factory's business."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import reelgen_bailian_wan
from reelgen_bailian_wan import create_provider
from reelgen_bailian_wan.emulated import EmulatorEndpoint
from reelgen_bailian_wan.endpoint import ServiceEndpoint

PACKAGE = Path(reelgen_bailian_wan.__file__).parent


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_provider_module_imports_nothing_of_the_emulator() -> None:
    for module in ("provider.py", "endpoint.py"):
        assert not {name for name in _imports(PACKAGE / module) if "emulat" in name}, module


def test_the_factory_chooses_the_endpoint() -> None:
    assert isinstance(create_provider({}).endpoint, ServiceEndpoint)
    emulated = create_provider({"emulator": True, "emulator_time_scale": 0.5})
    assert isinstance(emulated.endpoint, EmulatorEndpoint) and emulated.endpoint.time_scale == 0.5
    assert emulated.endpoint.emulator is None  # started by the first call, not by building the provider


def test_building_any_provider_loads_no_emulator_code() -> None:
    code = (
        "import json, sys\n"
        "from reelgen_bailian_wan import create_provider\n"
        "create_provider({}); create_provider({'emulator': True})\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('reelgen_bailian_wan.emulator'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_the_emulator_knows_neither_pytest_nor_the_contract_kit() -> None:
    for path in sorted((PACKAGE / "emulator").rglob("*.py")):
        known = {name for name in _imports(path) if name.split(".")[0] in ("pytest", "reelgen_contracts")}
        assert not known, f"{path.name} imports {sorted(known)}: test support lives in reelgen_bailian_wan.testing"
