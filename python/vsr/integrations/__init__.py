"""Adapters that run vsr inside other engines (``vsr.integrations.ray``: Ray Data)."""
