"""dssr_server: the legacy JARVICE downstream HTTP API over a :class:`dssr_core.Downstream`."""

from .app import create_app
from .settings import ServerSettings

__all__ = ["create_app", "ServerSettings"]
