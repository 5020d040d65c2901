"""Application-level faults in the real services, set through their loopback admin
endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from chaos.appfaults import AppFaultClient
from chaos.errors import FaultError
from chaos.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def app_faults(upstreams: Stack) -> Iterator[AppFaultClient]:
    """The services' application-fault client; everything is cleared after."""
    yield upstreams.app_faults
    upstreams.app_faults.sweep()


def test_errors_are_injected_and_cleared(upstreams: Stack, app_faults: AppFaultClient) -> None:
    app_faults.inject("inventory", "app_errors", {"percent": 100, "status": 503})
    assert app_faults.active("inventory") == {"errors": {"rate": 1.0, "status": 503.0}}
    answered = httpx.get(f"{upstreams.config.inventory_url}/v1/stock", timeout=5)
    assert answered.status_code == 503 and answered.headers["Retry-After"] == "1"
    assert app_faults.sweep() == ["cleared errors in inventory"]
    assert httpx.get(f"{upstreams.config.inventory_url}/v1/stock", timeout=5).status_code == 200


def test_a_fault_a_service_does_not_have_is_refused(app_faults: AppFaultClient) -> None:
    with pytest.raises(FaultError, match="applies to payments"):
        app_faults.inject("inventory", "app_declines", {"percent": 50})
