"""Typed repositories: a collection seen through a pydantic model or a dataclass."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import errors

if TYPE_CHECKING:
    from .store import Store

T = TypeVar("T")


class Repository(Generic[T]):
    """``save(obj)``, ``get(id)``, ``find(filter)``, ``delete(id)`` with model objects.

    The model needs a string field ``id``; the other fields are the content.
    Objects are validated by their model when made, and again when loaded.
    """

    def __init__(self, store: Store, model: type[T], *, collection: str | None = None) -> None:
        self.model = model
        self._pydantic = hasattr(model, "model_validate")
        if not self._pydantic and not dataclasses.is_dataclass(model):
            raise errors.ValidationError(
                f"a repository model must be a pydantic model or a dataclass, not {model!r}", path="model")
        fields = model.model_fields if self._pydantic else {f.name for f in dataclasses.fields(model)}  # type: ignore[attr-defined, arg-type]
        if "id" not in fields:
            raise errors.ValidationError(f"{model.__name__} has no 'id' field", path="model.id")
        name = collection or model.__name__.lower()
        self.collection = store.collection(name)

    def _content(self, obj: T) -> tuple[str, dict[str, Any]]:
        if not isinstance(obj, self.model):
            raise errors.ValidationError(f"expected a {self.model.__name__}, got {type(obj).__name__}")
        if self._pydantic:
            data = obj.model_dump(mode="json")  # type: ignore[attr-defined]
        else:
            data = dataclasses.asdict(obj)  # type: ignore[call-overload]
        return data.pop("id"), data

    def _load(self, id: str, content: dict[str, Any]) -> T:
        if self._pydantic:
            return self.model.model_validate({**content, "id": id})  # type: ignore[attr-defined, no-any-return]
        return self.model(id=id, **content)  # type: ignore[call-arg]

    def save(self, obj: T, *, if_version: int | None = None) -> T:
        id, content = self._content(obj)
        self.collection.put(content, id=id, type=self.model.__name__, if_version=if_version)
        return obj

    def get(self, id: str) -> T:
        rec = self.collection.get(id)
        return self._load(id, rec.content or {})

    def find(self, filter: dict[str, Any] | None = None, *, limit: int | None = None) -> list[T]:
        return [self._load(r.id, r.content or {}) for r in self.collection.find(filter, limit=limit)]

    def delete(self, id: str) -> None:
        self.collection.delete(id)
