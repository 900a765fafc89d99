"""The Envoy ext_proc service: one state machine per stream, pure mutation builders, the server."""
