"""The shared connector contract (dssr_core.testing), run against the local connector."""

from __future__ import annotations

from typing import Iterator

import pytest

from dssr_core import Downstream
from dssr_core.testing import ConnectorContract
from dssr_local.connector import LocalConnector
from dssr_local.shell import ShellExecutor


class TestLocalConnectorContract(ConnectorContract):
    timeout = 15.0
    poll_interval = 0.05
    hold_observation = 0.5

    @pytest.fixture
    def downstream(self, connector: LocalConnector, shell: ShellExecutor) -> Iterator[Downstream]:
        yield Downstream(connector, shell)
