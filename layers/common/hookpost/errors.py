"""What can go wrong below the API, said without HTTP: the API's one exception map
(`hookpost.api.app`) turns each kind into its problem answer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One wrong field, named as the client wrote it (`events[3].payload.amount`)."""

    field: str
    message: str


class HookpostError(Exception):
    """A request Hookpost refuses; `detail` tells the client why."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(HookpostError):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")


class Invalid(HookpostError):
    """One or more fields break a rule; `errors` names each, and the detail the first."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(f"{errors[0].field}: {errors[0].message}")
        self.errors = errors

    @classmethod
    def field(cls, field: str, message: str) -> Invalid:
        return cls([FieldError(field, message)])


class Conflict(HookpostError):
    """The request collides with what is stored, or with a change under way: send it again."""


class TooLarge(HookpostError):
    """Something is over a size limit."""
