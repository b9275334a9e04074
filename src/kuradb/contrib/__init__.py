"""Adapters to other frameworks; each is an optional extra."""
