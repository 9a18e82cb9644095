"""What operators see of a running service: Prometheus metrics, JSON logs and request ids."""
