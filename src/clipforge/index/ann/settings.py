"""A collection's index settings: the type (``auto`` or a FAISS factory string) and the memory
budget, as the user gives them (``--index``, ``--index-memory``, ``index=``, ``index_memory=``),
validated, and kept in the collection's ``meta`` table so that every later write and search
uses them."""

from __future__ import annotations

from pydantic import BaseModel, ByteSize, ConfigDict, ValidationError, field_validator

from ...errors import InputError
from .factory import AUTO, make

TYPE_KEY, MEMORY_KEY = "index_type", "index_memory"


class IndexSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str = AUTO
    memory: ByteSize | None = None  # resident bytes the index may use; None: a quarter of RAM for auto

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("an index type is auto or a FAISS factory string, not empty")
        return AUTO if value.lower() == AUTO else value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value):
        if value is not None and value <= 0:
            raise ValueError("an index memory budget must be more than 0 bytes")
        return value

    @classmethod
    def checked(cls, type: str | None, memory: str | int | None, dim: int,
                current: "IndexSettings | None" = None) -> "IndexSettings":
        """Settings from user input, on top of ``current``; one clear line when they are wrong."""
        base = current or cls()
        values = {"type": base.type if type is None else type, "memory": base.memory if memory is None else memory}
        try:
            settings = cls(**values)
        except ValidationError as e:
            error = e.errors()[0]
            raise InputError(f"index {error['loc'][0]} {values[error['loc'][0]]!r}: {error['msg']}") from None
        if settings.type != AUTO:
            make(settings.type, dim)  # an unknown factory string is refused now, not at the first search
        return settings

    @classmethod
    def from_meta(cls, meta: dict[str, str]) -> "IndexSettings":
        memory = meta.get(MEMORY_KEY)
        return cls(type=meta.get(TYPE_KEY) or AUTO, memory=int(memory) if memory else None)

    def to_meta(self) -> dict[str, str]:
        return {TYPE_KEY: self.type, MEMORY_KEY: "" if self.memory is None else str(int(self.memory))}

    @property
    def budget(self) -> int | None:
        return None if self.memory is None else int(self.memory)

    def describe(self) -> str:
        return self.type + ("" if self.memory is None else f", at most {self.memory.human_readable(decimal=True)}")
