"""Collection schemas: a JSON Schema dict (compiled by fastjsonschema) or a pydantic model class."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import ValidationError

Validator = Callable[[dict[str, Any]], None]


def compile_schema(schema: Any, collection: str) -> Validator | None:
    """Turn a collection's ``schema=`` option into a function that raises ValidationError."""
    if schema is None:
        return None
    if isinstance(schema, dict):
        return _json_schema_validator(schema, collection)
    if isinstance(schema, type) and hasattr(schema, "model_validate"):
        return _pydantic_validator(schema, collection)
    raise ValidationError(
        f"schema for collection {collection!r} must be a JSON Schema dict or a pydantic model class,"
        f" not {type(schema).__name__}", path="schema")


def _json_schema_validator(schema: dict[str, Any], collection: str) -> Validator:
    import fastjsonschema

    try:
        check = fastjsonschema.compile(schema)
    except fastjsonschema.JsonSchemaDefinitionException as e:
        raise ValidationError(f"schema for collection {collection!r} is not valid JSON Schema: {e}",
                              path="schema") from e

    def validate(content: dict[str, Any]) -> None:
        try:
            check(content)
        except fastjsonschema.JsonSchemaValueException as e:
            path = ".".join(str(p) for p in (e.path or [])[1:])
            message = e.message.replace("data.", "", 1).replace("data ", "document ", 1)
            raise ValidationError(
                f"{collection}: schema violation at {path or '(document)'}: {message}",
                path=path) from e

    return validate


def _pydantic_validator(model: Any, collection: str) -> Validator:
    import pydantic

    def validate(content: dict[str, Any]) -> None:
        try:
            model.model_validate(content)
        except pydantic.ValidationError as e:
            first = e.errors()[0]
            path = ".".join(str(p) for p in first["loc"])
            raise ValidationError(
                f"{collection}: schema violation at {path or '(document)'}: {first['msg']}"
                f" ({e.error_count()} error(s) in all)", path=path) from e

    return validate
