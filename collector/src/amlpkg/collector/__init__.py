"""Central telemetry: OTLP/HTTP receiver, MQTT bridge for devices, the store and summaries."""
