"""Building blocks for the config model: a frozen strict base, secrets, and problems that name their key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationError, ValidationInfo,
    model_validator,
)
from pydantic_core import InitErrorDetails

#: a problem a section finds in its keys together: where (a key path within the section), and what
Problem = tuple[tuple[str | int, ...], str]


class Section(BaseModel):
    """A frozen config section: unknown keys are errors, values are not coerced across types.

    What a section's keys cannot do together (``problems_together``) is looked for in the values as the
    file gives them, beside the checks of each key, so that a file's problems all come at once: a check of
    the built section would run only once every key of it was valid."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, arbitrary_types_allowed=True)

    @classmethod
    def problems_together(cls, data: dict[str, Any], context: dict[str, Any]) -> list[Problem]:
        """What this section's keys, as given, cannot do together; ``context`` has the loader's
        ``config_dir``. Values of the wrong type are left to the key's own check."""
        return []

    @model_validator(mode="wrap")
    @classmethod
    def _together(cls, data: Any, handler: Any, info: ValidationInfo) -> Any:
        problems = cls.problems_together(data, info.context or {}) if isinstance(data, dict) else []
        if not problems:
            return handler(data)
        found = [InitErrorDetails(type="value_error", loc=loc, input=data, ctx={"error": ValueError(message)})
                 for loc, message in problems]
        try:
            handler(data)
        except ValidationError as e:  # the keys' own problems, then these
            keys = [InitErrorDetails(type=x["type"], loc=x["loc"], input=x["input"], ctx=x.get("ctx", {}))
                    for x in e.errors()]
            raise ValidationError.from_exception_data(e.title, keys + found) from None
        raise ValidationError.from_exception_data(cls.__name__, found)

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
            del out[key]
            # A problem is left in the field's place, so that the section's other keys are still checked
            # and every problem of the file is reported at once (see _to_secret).
            if base in data:
                out[base] = _FileProblem(key, f"give either {base} or {key}, not both")
            elif not isinstance(value, str):
                out[base] = _FileProblem(key, f"expected a file path, got {value!r}")
            else:
                try:
                    out[base] = Secret(Path(value).read_text(encoding="utf-8").rstrip("\r\n"))
                except OSError as e:
                    out[base] = _FileProblem(key, f"cannot read {value}: {e.strerror}")
        return out


class KeyProblem(ValueError):
    """A problem a field's validator finds in one element of it (``key``: a list index), or in the key
    beside it (``sibling``: ``password_file`` for ``password``); the loader reports it at that key."""

    def __init__(self, key: str | int, message: str, sibling: bool = False) -> None:
        super().__init__(message)
        self.key = key
        self.sibling = sibling


class KeyProblems(ValueError):
    """Several problems a field's validator found at once; the loader reports each on its own line."""

    def __init__(self, problems: list[KeyProblem]) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


def raise_problems(problems: list[KeyProblem]) -> None:
    """Raise what a field's validator found, if anything."""
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise KeyProblems(problems)


class _FileProblem:
    """Why a ``*_file`` secret could not be read, waiting in the secret field for ``_to_secret``."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message


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
    if isinstance(value, _FileProblem):
        raise KeyProblem(value.key, value.message, sibling=True)
    if not isinstance(value, str):
        raise ValueError(f"expected a string, env:NAME or a *_file key, got {type(value).__name__}")
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return Secret(os.environ[name])
    return Secret(value)


SecretValue = Annotated[Secret, BeforeValidator(_to_secret), PlainSerializer(lambda s: "********")]


#: a TCP port number (``smtp.port``, a mailbox's ``port``)
Port = Annotated[int, Field(ge=1, le=65535)]


def strings(value: Any) -> list[str]:
    """The strings of a value that should be one string or a list of them (others: the key's own check)."""
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
