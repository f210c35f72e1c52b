"""The gateway: polls vehicles, publishes their telemetry over MQTT and executes commands."""
