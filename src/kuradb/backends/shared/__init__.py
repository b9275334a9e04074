"""SQL that both SQL engines write the same way (each engine's package supplies its own parts)."""
