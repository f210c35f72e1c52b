"""The internal MQTT broker: Mosquitto when installed, amqtt otherwise, configured from `mosquitto/`."""
