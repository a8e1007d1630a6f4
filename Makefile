# The README's two commands: `make demo` and `make test`. Nothing else needs installing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck docs bench clean services smoke dist

$(STAMP): constraints.txt core/pyproject.toml providers/preview/pyproject.toml providers/bailian_wan/pyproject.toml contracts/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt \
		-e 'core[s3,redis,workers]' -e providers/preview -e providers/bailian_wan -e contracts -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)

# A real generation: the bailian_wan provider, through the dashscope SDK, against the bundled emulator.
demo: $(STAMP)
	cd examples && ../$(BIN)/python make_photo.py && REELGEN_CONFIG=demo.toml ../$(BIN)/reelgen generate lighthouse.jpg \
		--prompt "waves roll against a lighthouse at dusk, the camera drifts slowly" --duration 5 --size 1280*720

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/python docs/gen_cli_reference.py

# Real services for the tests (redis-server); installed from Debian's packages when run as root.
services:
	@if [ "$$(id -u)" = 0 ] && ! command -v redis-server >/dev/null 2>&1; then bash .ci/services.sh; fi

# The wheels as a user gets them: build every distribution (sdist, then the wheel from it),
# `twine check --strict`, install the wheels into a fresh venv in a temp dir, and use them
# there from outside the checkout (tests/packaging/smoke.py says what it runs).
smoke: $(STAMP)
	$(BIN)/python tests/packaging/smoke.py

# Wheels and sdists of the four distributions in dist/ (`pip install --find-links dist ...`).
dist: $(STAMP)
	for d in core providers/preview providers/bailian_wan contracts; do \
		$(BIN)/uv build --quiet --out-dir dist --build-constraint constraints.txt $$d || exit 1; done
	$(BIN)/twine check --strict dist/*

test: services $(STAMP) lint typecheck smoke
	$(BIN)/python docs/gen_cli_reference.py --check
	$(BIN)/pytest -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) output dist .pytest_cache .mypy_cache .ruff_cache
