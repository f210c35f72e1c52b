from __future__ import annotations

from typing import Literal

from pydantic import Field

from common.settings import EnvSettings


class GatewaySettings(EnvSettings):
    source: Literal["simulated"] = Field("simulated", alias="GATEWAY_SOURCE")
    account: str = Field("simulator@example.com", alias="SAIC_USERNAME", min_length=1)
    poll_interval: float = Field(5.0, alias="GATEWAY_POLL_INTERVAL", gt=0, le=86400)
    heartbeat_interval: float = Field(
        600.0,
        alias="GATEWAY_HEARTBEAT_INTERVAL",
        gt=0,
        description="every value is republished this often even when unchanged",
    )
    command_timeout: float = Field(60.0, alias="GATEWAY_COMMAND_TIMEOUT", gt=0)
    simulated_vehicles: int = Field(3, alias="SIMULATED_VEHICLES", ge=1, le=100_000)
    simulator_seed: int = Field(1, alias="SIMULATOR_SEED")
    simulator_command_latency: float = Field(0.5, alias="SIMULATOR_COMMAND_LATENCY", ge=0, le=60)
    log_level: str = Field("INFO", alias="LOG_LEVEL")
