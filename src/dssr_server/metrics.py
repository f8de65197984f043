"""The Prometheus recorder behind ``/metrics`` (prometheus-client, one registry per app)."""

from __future__ import annotations

import platform
import threading
from typing import Any, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from dssr_core import Contact, JobState, __version__, metrics

#: latency buckets (seconds): a kept-open SSH command takes ~50 ms, a submission ~0.1-1 s
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PrometheusRecorder(metrics.Recorder):
    """Keeps every figure of :class:`dssr_core.metrics.Recorder` in its own registry."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "dssr_http_requests",
            "HTTP requests answered, by route and status",
            ["endpoint", "status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "dssr_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["endpoint"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.cluster_calls = Counter(
            "dssr_cluster_calls",
            "Commands on the cluster (or slurmrestd calls), by kind and outcome (ok, error, unreachable)",
            ["kind", "outcome"],
            registry=registry,
        )
        self.cluster_seconds = Histogram(
            "dssr_cluster_call_duration_seconds",
            "Time a cluster command or slurmrestd call took",
            ["kind"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.refreshes = Counter(
            "dssr_snapshot_refreshes",
            "Job snapshots fetched from the cluster, by outcome",
            ["outcome"],
            registry=registry,
        )
        self.snapshot_age = Gauge(
            "dssr_snapshot_age_seconds",
            "Seconds since the latest contact with the cluster (-1: the connector does not track it)",
            registry=registry,
        )
        self.contact_ok = Gauge(
            "dssr_cluster_contact_ok", "1 when the latest contact with the cluster went well", registry=registry
        )
        self.ssh_opened = Counter("dssr_ssh_connections_opened", "SSH connections opened", registry=registry)
        self.ssh_reconnects = Counter(
            "dssr_ssh_reconnects", "SSH connections opened to replace one that died", registry=registry
        )
        self.tokens_refused = Counter("dssr_tokens_refused", "Tokens refused, by reason", ["reason"], registry=registry)
        self.submissions = Counter(
            "dssr_submissions", "Submissions answered: new job or already existing", ["result"], registry=registry
        )
        self.jobs = Gauge(
            "dssr_jobs", "This downstream's jobs by state in the latest snapshot", ["state"], registry=registry
        )
        self.build = Gauge(
            "dssr_build_info",
            "Always 1: the jarvice-dssr version serving, and its Python",
            ["version", "python"],
            registry=registry,
        )
        self.build.labels(__version__, platform.python_version()).set(1)
        self._states: set[str] = {state.value for state in (JobState.QUEUED, JobState.RUNNING)}
        self._lock = threading.Lock()
        #: each (endpoint, status)'s counter and histogram, so that counting a request looks up no labels
        self._per_request: dict[tuple[str, int], tuple[Any, Any]] = {}
        for state in self._states:
            self.jobs.labels(state).set(0)

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        children = self._per_request.get((endpoint, status))
        if children is None:
            children = (self.requests.labels(endpoint, str(status)), self.request_seconds.labels(endpoint))
            self._per_request[(endpoint, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def cluster_call(self, kind: str, seconds: float, outcome: str) -> None:
        self.cluster_calls.labels(kind, outcome).inc()
        self.cluster_seconds.labels(kind).observe(seconds)

    def snapshot_refreshed(self, ok: bool) -> None:
        self.refreshes.labels("ok" if ok else "failed").inc()

    def ssh_connection(self, reconnect: bool) -> None:
        self.ssh_opened.inc()
        if reconnect:
            self.ssh_reconnects.inc()

    def token_refused(self, reason: str) -> None:
        self.tokens_refused.labels(reason).inc()

    def submission(self, existed: bool) -> None:
        self.submissions.labels("existing" if existed else "new").inc()

    def jobs_seen(self, counts: Mapping[str, int]) -> None:
        with self._lock:
            self._states |= set(counts)
            for state in self._states:
                self.jobs.labels(state).set(counts.get(state, 0))

    def exposition(self, contact: Contact | None) -> bytes:
        """The text format, with the contact figures read now (no call to the cluster)."""
        if contact is None:
            self.snapshot_age.set(-1)
            self.contact_ok.set(1)
        else:
            self.snapshot_age.set(round(contact.age(), 3))
            self.contact_ok.set(1 if contact.ok else 0)
        return generate_latest(self.registry)
