"""Simulated directly connected devices for the embedded default (`SIMULATED_DEVICES`)."""
