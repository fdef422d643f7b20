"""Shared fixtures: every test gets its own store and mitmproxy confdir in temp space; the
end-to-end modules share one mock LLM server per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_proxy.mock.server import MockLLMServer


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


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockLLMServer]:
    """The bundled mock LLM server over TLS (its own CA), one per test module."""
    with MockLLMServer(tls=True, cert_dir=tmp_path_factory.mktemp("mockcerts")) as server:
        yield server
