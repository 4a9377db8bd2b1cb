"""Shared helpers for the plugin's own tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def user_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A user's project: pytest-asyncio in strict mode, its loop scope set (no warning)."""
    pytester.makeini(
        """
        [pytest]
        asyncio_mode = strict
        asyncio_default_fixture_loop_scope = function
        """
    )
    return pytester
