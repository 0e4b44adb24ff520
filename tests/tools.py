"""Test helpers shared by the test files.

``require_tool(name)``: a test that needs an external tool (a compiler, a simulator, yosys)
calls it first.  Outside CI a missing tool skips the test with the reason; in CI
(``CI=true``, where every tool is installed) it fails the test, so nothing skips silently there.
"""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    """True when the environment says it is CI (``CI=true``, as GitHub Actions and GitLab set)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_tool(name: str, why: str = "") -> str:
    """The path of executable ``name`` on PATH; if it is missing, fail the test in CI and skip
    it elsewhere, saying which tool is missing (and ``why`` it is needed, if given)."""
    path = shutil.which(name)
    if path is not None:
        return path
    reason = f"{name} not found on PATH" + (f" (needed for {why})" if why else "")
    if in_ci():
        pytest.fail(f"{reason}; CI=true, so every tool must be installed", pytrace=False)
    pytest.skip(reason)


def needs(*names: str) -> pytest.MarkDecorator:
    """Mark a test (or a module, as ``pytestmark``) that needs the executables ``names``; the
    check is :func:`require_tool`, run by ``conftest.py`` before the test's fixtures."""
    return pytest.mark.needs_tool(*names)
