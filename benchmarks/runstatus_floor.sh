#!/bin/sh
# The interpreter poll_cycle.py --server-python runs as "python -m dssr_server": runs runstatus_floor.py instead.
here=$(cd "$(dirname "$0")" && pwd)
exec "${DSSR_FLOOR_PYTHON:-python3}" "$here/runstatus_floor.py"
