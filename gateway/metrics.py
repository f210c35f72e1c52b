"""The gateway's Prometheus metrics, on a registry of its own so each program exposes only its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

API_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
POLL_LAG_BUCKETS = (0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.api_calls = Counter(
            "saic_api_calls", "SAIC API calls by operation and outcome", ["operation", "outcome"], registry=r
        )
        self.api_duration = Histogram(
            "saic_api_call_duration_seconds",
            "SAIC API call duration, event-id retries included",
            ["operation"],
            buckets=API_DURATION_BUCKETS,
            registry=r,
        )
        self.logged_in = Gauge("saic_logged_in", "1 while the gateway holds a SAIC session token", registry=r)
        self.logins = Counter("saic_logins", "SAIC login attempts by outcome", ["outcome"], registry=r)
        self.circuit_open = Gauge("saic_circuit_open", "1 while calls to the SAIC API are suspended", registry=r)
        self.polls = Counter("gateway_polls", "vehicle polls by outcome", ["outcome"], registry=r)
        self.accounts_served = Gauge(
            "gateway_accounts_served", "SAIC accounts this replica holds the lease of and polls", registry=r
        )
        self.poll_slots = Gauge(
            "gateway_poll_slots", "polls allowed in flight now (sized by the API's answers)", registry=r
        )
        self.poll_lag = Histogram(
            "gateway_poll_start_lag_seconds",
            "how late polls start after they are due (waiting for a free slot included)",
            buckets=POLL_LAG_BUCKETS,
            registry=r,
        )
        self.near_call_budget = Gauge(
            "gateway_vehicles_near_call_budget",
            "vehicles past 80 % of their daily SAIC call budget (GATEWAY_DAILY_CALL_BUDGET)",
            registry=r,
        )
        self.call_budget_spent = Gauge(
            "gateway_vehicles_call_budget_spent",
            "vehicles whose daily SAIC call budget is spent: not polled until the next UTC day",
            registry=r,
        )
        self.commands = Counter(
            "gateway_commands", "commands by name and final status", ["command", "status"], registry=r
        )
