"""The Grid Engine connector: jobs run on a Grid Engine (8.1.x) cluster as the mapped cluster user.

It talks to Grid Engine with its commands over SSH to a submit host: ``qsub`` as
the job's user, ``qstat``/``qalter``/``qdel``/``qrls`` as the service user (an
operator), the accounting file for ended jobs.  See docs/gridengine.md.
"""
