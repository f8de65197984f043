"""dssr_local: the local connector (jobs as process groups on this machine) and the ``shell`` executor."""
