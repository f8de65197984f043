"""The command line: ``python -m tests.cluster up|down|status [--kind 2205|2605|ge]`` (run from the checkout, as root).

    python -m tests.cluster up [--without-2411]     # Slurm 22.05 + 24.11 (--without-2411: only 22.05)
    python -m tests.cluster status                  # JSON: which daemons are alive; exit 3 if down
    python -m tests.cluster down                    # stop and clean everything, also after a crash
    python -m tests.cluster up --kind 2605          # Slurm 26.05 + Apptainer (or: up-2605, status-2605, down-2605)
    python -m tests.cluster up --kind ge            # Grid Engine 8.1.9 (or: up-ge, status-ge, down-ge)
    python -m tests.cluster up-2411|down-2411       # only the 24.11 cluster, beside a running 22.05 one
    python -m tests.cluster scale-on|scale-off      # 22.05 nodes with 512 CPUs each, and back

Each kind has its own lock (status takes none), state and network, so they may be up side by side.
A failed ``up`` keeps the logs (the path is printed) and cleans up, unless DSSR_CLUSTER_KEEP_FAILED=1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from types import ModuleType
from typing import Any, Callable

from tests.cluster import gridengine, slurm, slurm2205, slurm2411, slurm2605
from tests.cluster.base import HarnessError, log

KINDS = {"2205": slurm, "2605": slurm2605, "ge": gridengine}
ALIVE = {"2205": "alive_2205", "2605": "alive_2605", "ge": "alive_ge"}
VERBS = ["up", "down", "status"]
SUFFIXED = {f"{verb}-{kind}": (verb, kind) for verb in VERBS for kind in ("2605", "ge")}
SLURM_ONLY = ["up-2411", "down-2411", "scale-on", "scale-off"]


def _print_status(kind: str) -> int:
    s: dict[str, Any] = KINDS[kind].status()
    print(json.dumps(s, indent=1))
    return 0 if s[ALIVE[kind]] else 3


def _up(kind: str, module: ModuleType, bring_up: Callable[[], object]) -> int:
    suffix = "" if kind == "2205" else f"-{kind}"
    try:
        bring_up()
    except Exception as e:  # noqa: BLE001 - any failure of a bring-up is reported, its logs kept, the rest cleaned
        log(f"up{suffix} failed: {e}")
        log(f"logs kept in {module.save_logs()}")
        if os.environ.get("DSSR_CLUSTER_KEEP_FAILED") == "1":
            log(f"DSSR_CLUSTER_KEEP_FAILED=1: left as is for inspection; `down{suffix}` cleans")
            return 1
        module.down()
        return 1
    print(json.dumps(module.status(), indent=1))
    return 0


def _slurm_only(action: str) -> int:
    if action == "up-2411":
        host = slurm.load()
        if host is None:
            log("no 22.05 cluster: run `up` first")
            return 1
        slurm2411.up_2411(host)
    elif action == "down-2411":
        slurm2411.down_2411()
    else:
        if not slurm.alive("slurm-22.05"):
            log("no 22.05 cluster: run `up` first")
            return 1
        slurm2205.set_scale_2205(action == "scale-on")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("action", choices=[*VERBS, *SUFFIXED, *SLURM_ONLY])
    ap.add_argument("--kind", choices=list(KINDS), default="2205", help="which cluster (default: Slurm 22.05 + 24.11)")
    ap.add_argument("--without-2411", action="store_true", help="up: only the Slurm 22.05 cluster")
    a = ap.parse_args(argv)
    verb, kind = SUFFIXED.get(a.action, (a.action, a.kind))
    if verb in SLURM_ONLY and kind != "2205":
        ap.error(f"{verb} is for the Slurm 22.05 cluster only, not --kind {kind}")
    if verb == "status":
        return _print_status(kind)
    module = KINDS[kind]
    with module.session_lock(timeout=60):
        if verb == "down":
            module.down()
            return 0
        if verb == "up":
            return _up(kind, module, (lambda: slurm.up(with_2411=not a.without_2411)) if kind == "2205" else module.up)
        return _slurm_only(verb)


def run() -> None:
    try:
        sys.exit(main())
    except HarnessError as e:
        log(str(e))
        sys.exit(2)
