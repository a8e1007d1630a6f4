"""Shared test set-up: isolated user directories and Hypothesis profiles."""

from __future__ import annotations

import os
import tempfile

from hypothesis import HealthCheck, settings

from tests.helpers.fixtures import config, mp4_bytes, photo  # noqa: F401 - shared fixtures

# Never touch the real user's cache, config or state: platformdirs follows XDG on Linux.
_home = tempfile.mkdtemp(prefix="reelgen-tests-home-")
for _variable in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"):
    os.environ[_variable] = os.path.join(_home, _variable.lower())
for _variable in [v for v in os.environ if v.startswith(("REELGEN_", "DASHSCOPE_"))]:
    del os.environ[_variable]

settings.register_profile("default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
