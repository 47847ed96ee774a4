"""The check of every closed-set setting of ``data/`` (``invalid_sequences``, ``inserts``, ``prior``): the allowed
values are read from the setting's ``Literal`` alias, so the alias is the one place that names them and every
message lists exactly what the type allows."""

from __future__ import annotations

from typing import Any, get_args


def choice_error(name: str, value: object, alias: Any) -> ValueError:
    """``name must be 'a', 'b' or 'c', got 'x'``: the error for a ``value`` outside the ``Literal`` ``alias``."""
    choices = [repr(choice) for choice in get_args(alias)]
    allowed = f"{', '.join(choices[:-1])} or {choices[-1]}" if len(choices) > 1 else choices[0]
    return ValueError(f"{name} must be {allowed}, got {value!r}")


def check_choice(name: str, value: object, alias: Any) -> None:
    """Raise :func:`choice_error` unless ``value`` is one of the values of the ``Literal`` ``alias``."""
    if value not in get_args(alias):
        raise choice_error(name, value, alias)
