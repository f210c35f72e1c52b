"""What every program shares: settings, the MQTT topic and command contract, the MQTT client, logging."""
