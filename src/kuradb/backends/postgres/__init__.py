"""The PostgreSQL backend: a kuradb store in one schema of a PostgreSQL database (extra ``[postgres]``)."""
