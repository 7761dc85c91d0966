"""The router's Prometheus metrics, exported through Ray's metrics API (each Ray node's metrics endpoint, which a
Prometheus scrapes; Ray prefixes the names with `ray_`): requests by route, latency, the online score and
backend errors, each tagged with the specialist (Serve adds the deployment, replica and application)."""

from __future__ import annotations

LATENCY_BOUNDARIES_S = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]


class RouterMetrics:
    """Created once per router replica."""

    def __init__(self) -> None:
        from ray.serve import metrics

        self.requests = metrics.Counter("parallel_r1_requests", description="Chat requests answered, by route.",
                                        tag_keys=("specialist", "version", "route_source"))
        self.latency = metrics.Histogram("parallel_r1_request_latency_s", boundaries=LATENCY_BOUNDARIES_S,
                                         description="Seconds from a chat request to its full reply.",
                                         tag_keys=("specialist",))
        self.score = metrics.Gauge("parallel_r1_online_score", description="The latest online grade of a version.",
                                   tag_keys=("specialist", "version"))
        self.errors = metrics.Counter("parallel_r1_backend_errors", description="Chat requests the backend failed.",
                                      tag_keys=("specialist", "kind"))

    def answered(self, specialist: str, version: str, route_source: str, latency_s: float) -> None:
        self.requests.inc(tags={"specialist": specialist, "version": version, "route_source": route_source})
        self.latency.observe(latency_s, tags={"specialist": specialist})

    def graded(self, record: dict) -> None:
        """`record`: an online grading's score log record."""
        tags = {"specialist": record["specialist"], "version": record.get("version") or ""}
        self.score.set(record["score"], tags=tags)

    def failed(self, specialist: str, kind: str) -> None:
        self.errors.inc(tags={"specialist": specialist, "kind": kind})
