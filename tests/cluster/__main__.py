"""``python -m tests.cluster up|down|status ...``: see tests/cluster/cli.py."""

from tests.cluster.cli import run

run()
