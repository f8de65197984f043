"""Shared pytest configuration: the real-cluster tier's fixtures live in tests/cluster/fixtures.py."""

pytest_plugins = ["tests.cluster.fixtures"]
