"""Test helpers for connector authors (needs pytest; not imported by ``dssr_core`` itself).

``ConnectorContract`` is the behavioural suite every connector passes: subclass
it in a test module and provide the ``downstream`` fixture.  See docs/plugins.md.
"""

from .contract import ConnectorContract, unique_name, wait_for

__all__ = ["ConnectorContract", "unique_name", "wait_for"]
