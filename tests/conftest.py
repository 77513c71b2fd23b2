"""Shared fixtures: a real Prometheus scraping the test exporter, and a KEDA-side gRPC client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.harness.exporter import FakeFleet
from tests.harness.keda_client import generate_client
from tests.harness.prometheus import PrometheusProcess, require_prometheus


@pytest.fixture(scope="session")
def keda_pb(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, ModuleType]:
    """(pb2, pb2_grpc) generated from KEDA's upstream proto at test time."""
    return generate_client(tmp_path_factory.mktemp("kedaclient"))


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeFleet]:
    require_prometheus()
    d = tmp_path_factory.mktemp("fleet")
    f = FakeFleet(Path(d) / "targets.json")
    yield f
    f.close()


@pytest.fixture(scope="session")
def prometheus(fleet: FakeFleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusProcess]:
    prom = PrometheusProcess(tmp_path_factory.mktemp("prometheus"), fleet.address, fleet.sd_file)
    prom.start()
    yield prom
    prom.stop()
