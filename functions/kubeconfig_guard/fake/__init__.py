"""A moto-style fake of the ACK OpenAPI (placeholder; completed below)."""
