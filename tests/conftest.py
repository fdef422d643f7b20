"""Shared fixtures: every test gets its own store and mitmproxy confdir in temp space."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_user_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's real store, config or mitmproxy CA."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.delenv("LLM_AUDIT_STORE", raising=False)
    monkeypatch.delenv("LLM_AUDIT_CONFIG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")  # stable rich output width


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    return path
