"""The Slurm connector: jobs run on a Slurm cluster as the mapped cluster user.

``JARVICE_SLURM_INTERFACE=cli`` (default) talks to Slurm with its commands over
SSH (:mod:`dssr_slurm.cli`); ``http`` through slurmrestd (:mod:`dssr_slurm.rest`).
"""
