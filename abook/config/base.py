"""Building blocks for the config model: a frozen strict base, endpoint strings and secrets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, model_validator


class Section(BaseModel):
    """A frozen config section: unknown keys are errors, values are not coerced across types."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, arbitrary_types_allowed=True)

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        """``password_file = "/path"`` fills a Secret field ``password`` from that file."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key, value in data.items():
            if not key.endswith("_file"):
                continue
            base = key[: -len("_file")]
            field = cls.model_fields.get(base)
            if field is None or not _is_secret(field.annotation):
                continue
            if base in data:
                raise ValueError(f"give either {base} or {key}, not both")
            if not isinstance(value, str):
                raise ValueError(f"{key}: expected a file path, got {value!r}")
            try:
                out[base] = Secret(Path(value).read_text(encoding="utf-8").rstrip("\r\n"))
            except OSError as e:
                raise ValueError(f"{key}: cannot read {value}: {e.strerror}") from None
            del out[key]
        return out


def _is_secret(annotation: Any) -> bool:
    if annotation is Secret:
        return True
    return any(_is_secret(a) for a in getattr(annotation, "__args__", ()) or ())


class Secret:
    """A password or key. Its repr and str never show the value; ``reveal()`` does."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _to_secret(value: Any) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a string, env:NAME or a *_file key, got {type(value).__name__}")
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return Secret(os.environ[name])
    return Secret(value)


SecretValue = Annotated[Secret, BeforeValidator(_to_secret), PlainSerializer(lambda s: "********")]


_ENDPOINT_KINDS = ("tcp", "ssl", "unix", "tcp6", "systemd")


def _endpoint(value: Any) -> str:
    example = '"tcp:10389:interface=127.0.0.1"'
    if not isinstance(value, str):
        raise ValueError(f"expected a Twisted endpoint string such as {example}, got {value!r}")
    kind = value.split(":", 1)[0]
    if kind not in _ENDPOINT_KINDS or ":" not in value:
        raise ValueError(f"expected a Twisted endpoint string such as {example}, got {value!r}")
    return value


Endpoint = Annotated[str, BeforeValidator(_endpoint)]


def _endpoints(value: Any) -> Any:
    """One endpoint string or a list of them."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return value
    return [_endpoint(value)]


EndpointList = Annotated[list[Endpoint], BeforeValidator(_endpoints)]
