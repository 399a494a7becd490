"""Typed access to fields of a JSON object, with one clear error per bad field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tinyfleet.ontology.errors import DescriptionError

_MISSING = object()


class Fields:
    """Read fields of ``data`` (a JSON object) named ``what`` in error messages."""

    def __init__(self, data: Any, what: str) -> None:
        if not isinstance(data, Mapping):
            raise DescriptionError(f"{what} must be a JSON object, got {type(data).__name__}")
        self.data = data
        self.what = what

    def _get(self, key: str, required: bool) -> Any:
        value = self.data.get(key, _MISSING)
        if value is _MISSING or value is None:
            if required:
                raise DescriptionError(f"{self.what} is missing '{key}'")
            return None
        return value

    def text(self, key: str, required: bool = False) -> str | None:
        value = self._get(key, required)
        if value is not None and (not isinstance(value, str) or not value):
            raise DescriptionError(f"{self.what}: '{key}' must be a non-empty string")
        return value

    def integer(self, key: str, required: bool = False) -> int | None:
        value = self._get(key, required)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise DescriptionError(f"{self.what}: '{key}' must be an integer, got {value!r}")
        return value

    def number(self, key: str, required: bool = False) -> float | None:
        value = self._get(key, required)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise DescriptionError(f"{self.what}: '{key}' must be a number, got {value!r}")
        return None if value is None else float(value)

    def strings(self, key: str, required: bool = False) -> list[str]:
        value = self._get(key, required)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise DescriptionError(f"{self.what}: '{key}' must be a list of non-empty strings")
        return list(value)

    def shape(self, key: str, required: bool = False) -> tuple[int, ...] | None:
        value = self._get(key, required)
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
        ):
            raise DescriptionError(f"{self.what}: '{key}' must be a list of integers >= 0")
        return tuple(value)

    def obj(self, key: str, required: bool = False) -> Fields | None:
        value = self._get(key, required)
        return None if value is None else Fields(value, f"{self.what}.{key}")


def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    """``(1, 8, 8, 1)`` -> ``"1x8x8x1"``: the form tfo:tensorShape and tfo:sampleShape use."""
    return "x".join(str(int(d)) for d in shape)
