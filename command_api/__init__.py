"""The command API: vehicles' state and remote commands over HTTP for the frontend."""
