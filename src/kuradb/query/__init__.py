"""The query engine: filters, sorting, indexes, aggregation and full-text search over collections."""
