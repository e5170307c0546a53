"""Fixtures of the data tests."""

from __future__ import annotations

import pytest

from samora.data.tasks import registered_tasks, unregister_task


@pytest.fixture(autouse=True)
def forget_registered_tasks():
    """Each test ends with no user's task registered (resolving task files registers them)."""
    yield
    for name in registered_tasks():
        unregister_task(name)
