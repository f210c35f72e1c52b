"""What the gateway feeds beyond its own topics: Home Assistant, ABRP, OsmAnd, OpenWB."""
