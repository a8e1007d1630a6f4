"""The emulator's shape: three route sets over one Service, and no import of the provider.

The emulator is an independent oracle of the documented API: if it imported the
provider's capabilities or mapping, a wrong number there would be right by definition.
"""

from __future__ import annotations

import ast
from pathlib import Path

import reelgen_bailian_wan.emulator as emulator_package
from reelgen_bailian_wan.emulator import routes_api, routes_control, routes_oss, service

EMULATOR = Path(emulator_package.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every module a file imports, relative imports resolved against the emulator package."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names.add(node.module or "")
            else:
                base = ["reelgen_bailian_wan", "emulator"][: 2 - (node.level - 1)]
                names.add(".".join([*base, *([node.module] if node.module else [])]))
    return names


def test_the_emulator_never_imports_the_provider() -> None:
    files = sorted(EMULATOR.glob("*.py"))
    assert len(files) > 10
    for path in files:
        for name in _imports(path):
            if name.startswith("reelgen_bailian_wan"):
                assert name.startswith("reelgen_bailian_wan.emulator"), f"{path.name} imports {name}"


def test_three_route_sets_over_one_service() -> None:
    kinds = {"api": routes_api.ROUTES, "oss": routes_oss.ROUTES, "control": routes_control.ROUTES}
    for kind, routes in kinds.items():
        assert routes and {route.kind for route in routes} == {kind}
    assert [*routes_api.ROUTES, *routes_oss.ROUTES, *routes_control.ROUTES] == service.ROUTES
    assert all(route.host for route in routes_oss.ROUTES)  # OSS errors name their bucket's host
    # Each handler lives in its route set's module, not on the Service.
    for kind, routes in kinds.items():
        module = {"api": routes_api, "oss": routes_oss, "control": routes_control}[kind]
        assert {route.handler.__module__ for route in routes} == {module.__name__}
