"""The wheel smoke test (`make smoke`): build every distribution, check it, install the wheels
into a fresh virtual environment, and use reelgen there as a user would.

1. `uv build` (sdist, then the wheel from the sdist) for core, preview, bailian_wan and
   contracts; `twine check --strict` on all eight files.
2. A new virtual environment in a temporary folder, with the four WHEELS (not editable)
   and their PyPI dependencies under constraints.txt: nothing else from the checkout.
3. `reelgen new-provider acme` there, and `pip install ./acme --find-links DIST` (its
   `reelgen>=0.1.0` resolves against the built wheel, as a third-party plugin's would).
4. From a folder outside the checkout, with a clean environment and an empty HOME:
   `reelgen --version`, `reelgen providers`, a `preview` generation, a `bailian_wan`
   generation against its emulator (`providers.bailian_wan.emulator = true`), and the
   contract suite on `preview` and on the generated `acme`.

Run it as `python tests/packaging/smoke.py [--keep]` with the development environment's
Python (it needs uv and twine from requirements-dev.txt). It prints each step's time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = {
    "reelgen": "core",
    "reelgen-preview": "providers/preview",
    "reelgen-bailian-wan": "providers/bailian_wan",
    "reelgen-contracts": "contracts",
}
TOOLS = Path(sys.executable).parent


class SmokeFailure(Exception):
    pass


def _run(
    args: Sequence[str | Path], *, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 900
) -> str:
    shown = " ".join(str(arg) for arg in args)
    print(f"  $ {shown}", flush=True)
    done = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise SmokeFailure(f"`{shown}` exited {done.returncode}\n--- stdout\n{done.stdout[-8000:]}\n--- stderr\n"
                           f"{done.stderr[-8000:]}")  # fmt: skip
    return done.stdout


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


class Step:
    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> Step:
        print(f"== {self.name}", flush=True)
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            print(f"   ok ({time.monotonic() - self.started:.1f} s)", flush=True)


def build(dist: Path) -> list[Path]:
    """sdist and wheel of every distribution into `dist`, then their metadata checked."""
    with Step("build sdists and wheels"):
        for folder in DISTRIBUTIONS.values():
            _run(
                [TOOLS / "uv", "build", "--quiet", "--out-dir", dist,
                 "--build-constraint", ROOT / "constraints.txt", ROOT / folder]
            )  # fmt: skip
        files = sorted(f for f in dist.iterdir() if f.suffix == ".whl" or f.name.endswith(".tar.gz"))
        for name in DISTRIBUTIONS:
            stem = name.replace("-", "_")
            _check(
                any(f.name.startswith(f"{stem}-") and f.suffix == ".whl" for f in files)
                and any(f.name.startswith(f"{stem}-") and f.name.endswith(".tar.gz") for f in files),
                f"no wheel and sdist for {name} in {[f.name for f in files]}",
            )
    with Step("twine check --strict"):
        _run([TOOLS / "twine", "check", "--strict", *files])
    return files


def install(dist: Path, venv: Path, plugins: Path) -> Path:
    """A fresh venv with the wheels, then a generated plugin installed against them; its Python."""
    uv = TOOLS / "uv"
    python = venv / "bin" / "python"
    base = getattr(sys, "_base_executable", sys.executable)
    with Step("fresh virtual environment with the wheels"):
        _run([uv, "venv", "--quiet", "--python", base, venv])
        wheels = sorted(dist.glob("*.whl"))
        _run([uv, "pip", "install", "--quiet", "--python", python, "-c", ROOT / "constraints.txt", *wheels])
        modules = ("reelgen", "reelgen_preview", "reelgen_bailian_wan", "reelgen_contracts")
        code = f"import {', '.join(modules)}\n" + "".join(f"print({m}.__file__)\n" for m in modules)
        where = _run([python, "-c", code])
        for line in where.split():
            _check(Path(line).is_relative_to(venv), f"imported from outside the smoke venv: {line}")
    with Step("reelgen new-provider acme, installed against the built wheels"):
        _run([venv / "bin" / "reelgen", "new-provider", "acme", "--dir", plugins])
        _run(
            [uv, "pip", "install", "--quiet", "--python", python, "-c", ROOT / "constraints.txt",
             "--find-links", dist, plugins / "acme"]
        )  # fmt: skip
        listed = _run([uv, "pip", "list", "--python", python, "--format", "json"])
        versions = {item["name"]: item["version"] for item in json.loads(listed)}
        _check(versions.get("reelgen-acme") == "0.1.0", f"reelgen-acme not installed: {versions}")
        _check(versions.get("reelgen") == "0.1.0", f"reelgen is not the built 0.1.0 wheel: {versions}")
    return python


def use(venv: Path, work: Path) -> None:
    """reelgen as a user runs it, from `work` (outside the checkout), nothing inherited."""
    bin_dir = venv / "bin"
    home = work / "home"
    home.mkdir(parents=True)
    dropped = ("REELGEN_", "DASHSCOPE_", "PYTEST_", "XDG_", "UV_", "PYTHONPATH", "VIRTUAL_ENV")
    env = {key: value for key, value in os.environ.items() if not key.startswith(dropped)}
    env.update(HOME=str(home), PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv))
    (work / "reelgen.toml").write_text(
        '[storage]\nurl = "videos"\n\n[providers.bailian_wan]\nemulator = true\nemulator_time_scale = 0.02\n'
    )
    reelgen = bin_dir / "reelgen"
    with Step("reelgen --version"):
        out = _run([reelgen, "--version"], cwd=work, env=env)
        named = {line.split()[0] for line in out.splitlines() if line.strip()}
        wanted = {*DISTRIBUTIONS, "reelgen-acme"}
        _check(wanted <= named, f"--version does not name {sorted(wanted - named)}:\n{out}")
    with Step("reelgen providers"):
        listed = json.loads(_run([reelgen, "providers", "--json"], cwd=work, env=env))
        names = {item["name"]: item.get("error") for item in listed["providers"]}
        _check(
            {"preview", "bailian_wan", "acme"} <= set(names) and not any(names.values()),
            f"providers: {names}, failed plugins: {listed['failed_plugins']}",
        )
        _check(not listed["failed_plugins"], f"plugins failed to load: {listed['failed_plugins']}")
    with Step("a preview generation"):
        result = json.loads(
            _run(
                [reelgen, "generate", "--provider", "preview", "--prompt", "a paper boat drifts",
                 "--duration", "1", "--fps", "12", "--size", "320*240", "--json"],
                cwd=work, env=env,
            )
        )  # fmt: skip
        _check_video(result, "preview", work)
    with Step("a bailian_wan generation against the emulator"):
        _run(
            [bin_dir / "python", "-c",
             "from PIL import Image; Image.new('RGB', (1280, 720), (40, 90, 160)).save('photo.jpg')"],
            cwd=work, env=env,
        )  # fmt: skip
        result = json.loads(
            _run(
                [reelgen, "generate", "photo.jpg", "--provider", "bailian_wan", "--prompt", "waves at dusk",
                 "--duration", "2", "--size", "1280*720", "--json"],
                cwd=work, env=env,
            )
        )  # fmt: skip
        _check_video(result, "bailian_wan", work)
    with Step("pytest --reelgen-provider preview --reelgen-provider acme"):
        out = _run(
            [bin_dir / "pytest", "-q", "-p", "no:cacheprovider", "--reelgen-provider", "preview",
             "--reelgen-provider", "acme"],
            cwd=work, env=env,
        )  # fmt: skip
        print("   " + (out.strip().splitlines() or ["(no output)"])[-1])


def _check_video(result: dict[str, object], provider: str, work: Path) -> None:
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    url = str(result.get("video_url", ""))
    path = Path(url2pathname(urlparse(url).path)) if url.startswith("file:") else Path(url)
    _check(result.get("provider") == provider, f"result of {result.get('provider')!r}, wanted {provider!r}")
    _check(path.is_file() and path.stat().st_size == result.get("bytes"), f"no stored video at {url}")
    _check(path.resolve().is_relative_to(work.resolve()), f"{provider} stored its video outside {work}: {url}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (printed) for a look")
    options = parser.parse_args(argv)
    started = time.monotonic()
    top = Path(tempfile.mkdtemp(prefix="reelgen-smoke-"))
    _check(not top.resolve().is_relative_to(ROOT), f"the smoke folder {top} must be outside the checkout")
    print(f"smoke folder: {top}", flush=True)
    try:
        build(top / "dist")
        install(top / "dist", top / "venv", top / "plugins")
        use(top / "venv", top / "work")
    except (SmokeFailure, subprocess.TimeoutExpired) as exc:
        print(f"SMOKE FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if not options.keep:
            shutil.rmtree(top, ignore_errors=True)
    print(f"smoke passed in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
