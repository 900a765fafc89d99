"""vsr's own HTTP API (health, readiness, models) on its own port, beside the gRPC service."""
