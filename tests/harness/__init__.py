"""Real servers for tests: Prometheus, a metrics exporter, the scaler, and a KEDA-side client."""
