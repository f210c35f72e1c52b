from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr

from common.settings import EnvSettings
from gateway.refresh import ACTIVITY_CHECKS, CALL_BUDGETS, PROFILES, PollingProfile, RefreshPeriods


class GatewaySettings(EnvSettings):
    source: Literal["auto", "simulated", "saic"] = Field(
        "auto", alias="GATEWAY_SOURCE", description="auto: the SAIC API when SAIC_USERNAME and SAIC_PWD are set"
    )
    account: str = Field(
        "simulator@example.com", validation_alias=AliasChoices("SAIC_USERNAME", "SAIC_USER"), min_length=1
    )
    saic_password: SecretStr | None = Field(None, validation_alias=AliasChoices("SAIC_PWD", "SAIC_PASSWORD"))
    polling_profile: Literal["auto", "battery-safe", "fleet"] = Field(
        "auto",
        alias="GATEWAY_POLLING_PROFILE",
        description="auto: battery-safe for a real SAIC account, fleet for the simulator (gateway/refresh.py)",
    )
    poll_interval: float | None = Field(
        None, alias="GATEWAY_POLL_INTERVAL", gt=0, le=86400, description="all three periods, over the profile's"
    )
    poll_interval_active: float | None = Field(None, alias="GATEWAY_POLL_INTERVAL_ACTIVE", gt=0, le=86400)
    poll_interval_sleep: float | None = Field(None, alias="GATEWAY_POLL_INTERVAL_SLEEP", gt=0, le=86400)
    poll_interval_inactive: float | None = Field(None, alias="GATEWAY_POLL_INTERVAL_INACTIVE", gt=0, le=864000)
    sleep_grace: float | None = Field(
        None, alias="GATEWAY_SLEEP_GRACE", ge=0, description="how long after activity a car is polled as after-shutdown"
    )
    daily_call_budget: int | None = Field(
        None,
        alias="GATEWAY_DAILY_CALL_BUDGET",
        ge=0,
        description="SAIC calls per car and UTC day before its polling stops until the next day (0: none)",
    )
    error_backoff_max: float = Field(900.0, alias="GATEWAY_ERROR_BACKOFF_MAX", gt=0)
    poll_concurrency: int = Field(
        100,  # the SAIC client's connections (gateway/saic/http.py): more polls would queue for one
        alias="GATEWAY_POLL_CONCURRENCY",
        ge=1,
        le=10_000,
        description="the most polls in flight; below it the API's answers decide (gateway/poll_slots.py)",
    )
    heartbeat_interval: float = Field(
        600.0,
        alias="GATEWAY_HEARTBEAT_INTERVAL",
        gt=0,
        description="every value is republished this often even when unchanged",
    )
    command_timeout: float = Field(60.0, alias="GATEWAY_COMMAND_TIMEOUT", gt=0)
    activity_check_interval: float | None = Field(
        None,
        alias="GATEWAY_ACTIVITY_CHECK_INTERVAL",
        ge=0,
        description="how often an inactive car's stored status is read, which does not wake it (0: never)",
    )
    account_sync_interval: float = Field(
        10.0,
        alias="GATEWAY_ACCOUNT_SYNC_INTERVAL",
        gt=0,
        le=300,
        description="how often the accounts table is read and free accounts are leased (the failover time)",
    )
    message_interval: float = Field(
        60.0,
        alias="GATEWAY_MESSAGE_INTERVAL",
        ge=0,
        description="how often the account's message list is read, as upstream (0: never)",
    )
    ha_discovery: bool = Field(True, alias="HA_DISCOVERY_ENABLED")
    ha_discovery_prefix: str = Field("homeassistant", alias="HA_DISCOVERY_PREFIX", pattern=r"^[^#+/$][^#+]*$")
    simulated_vehicles: int = Field(3, alias="SIMULATED_VEHICLES", ge=1, le=100_000)
    simulator_seed: int = Field(1, alias="SIMULATOR_SEED")
    simulator_command_latency: float = Field(0.5, alias="SIMULATOR_COMMAND_LATENCY", ge=0, le=60)
    log_level: str = Field("INFO", alias="LOG_LEVEL")

    @property
    def uses_saic(self) -> bool:
        if self.source == "auto":
            return self.saic_password is not None
        return self.source == "saic"

    @property
    def profile(self) -> PollingProfile:
        if self.polling_profile == "auto":
            return PollingProfile.BATTERY_SAFE if self.uses_saic else PollingProfile.FLEET
        return PollingProfile(self.polling_profile)

    @property
    def activity_checks(self) -> float:
        if self.activity_check_interval is None:
            return ACTIVITY_CHECKS[self.profile]
        return self.activity_check_interval

    @property
    def call_budget(self) -> int:
        return CALL_BUDGETS[self.profile] if self.daily_call_budget is None else self.daily_call_budget

    def refresh_periods(self) -> RefreshPeriods:
        """A vehicle's own copy of its periods (`refresh/period/<name>/set` changes them per car)."""
        base, every = PROFILES[self.profile], self.poll_interval
        return RefreshPeriods(
            active=self.poll_interval_active or every or base.active,
            after_shutdown=self.poll_interval_sleep or every or base.after_shutdown,
            inactive=self.poll_interval_inactive or every or base.inactive,
            inactive_grace=base.inactive_grace if self.sleep_grace is None else self.sleep_grace,
            error_max=self.error_backoff_max,
        )
