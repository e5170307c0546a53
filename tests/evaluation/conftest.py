"""Fixtures of the evaluation tests."""

from __future__ import annotations

import pytest

from tests.helpers import data_tiny_model


@pytest.fixture(scope="session")
def data_model(smollm2_tokenizer):
    """A plain tiny Llama (no task_ids in its forward), shared by the tests that only score."""
    return data_tiny_model(smollm2_tokenizer, recording=False)
