from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from inspector.samples.mock_xero import MockXero

from inspector.proxy.ca import ensure_ca


@pytest.fixture(scope="session")
def confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private mitmproxy confdir with its CA, created once (RSA key generation is slow)."""
    path = tmp_path_factory.mktemp("mitmproxy-conf")
    ensure_ca(path)
    return path


@pytest.fixture
def mock() -> Iterator[MockXero]:
    with MockXero() as server:
        yield server


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockXero]:
    """A mock Xero shared by one test module's recording and its replays."""
    with MockXero() as server:
        yield server


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """asyncio only: Textual and the MCP SDK's tests run on it, and with trio installed (selenium
    brings it) anyio's plugin would run every async test on trio too."""
    return "asyncio"
