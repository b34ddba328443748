"""The errors an admin or user sees. Layer-specific errors live in their own packages."""

from __future__ import annotations


class AbookError(Exception):
    """Root of abook's own errors."""


class UserError(AbookError):
    """A mistake the user can fix; shown as one line, without a traceback."""


class ConfigError(UserError):
    """A bad configuration value: names the file, the dotted key path, and what was expected."""

    def __init__(self, msg: str, path: str = "", file: str = "") -> None:
        self.msg = msg
        self.path = path
        self.file = file
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = [p for p in (self.file, self.path) if p]
        return ": ".join(parts + [self.msg])


class ConfigErrors(ConfigError):
    """Every problem found in one config file: ``str`` gives one line per problem; ``msg``, ``path`` and
    ``file`` are the first problem's."""

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(first.msg, first.path, first.file)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class NotFound(UserError):
    """A named record does not exist."""
