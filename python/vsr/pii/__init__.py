"""PII detection: the Rampart model's conversion, canonical entity types and pattern recognisers."""
