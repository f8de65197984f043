"""Shared pytest configuration (at the root so that it may load plugins): the cluster tier's fixtures live in tests/cluster/fixtures.py."""

pytest_plugins = ["tests.cluster.fixtures"]
