from __future__ import annotations

from pydantic import Field, SecretStr

from common.settings import EnvSettings, Port


class ApiSettings(EnvSettings):
    host: str = Field("127.0.0.1", alias="API_HOST", description="0.0.0.0 in the container")
    port: Port = Field(8080, alias="PORT")
    api_key: SecretStr | None = Field(None, alias="COMMAND_API_KEY", min_length=16)
    command_timeout: float = Field(30.0, alias="COMMAND_TIMEOUT", gt=0, le=300)
    log_level: str = Field("INFO", alias="LOG_LEVEL")
