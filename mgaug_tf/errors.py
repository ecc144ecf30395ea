"""The error raised when a constructor argument is out of its domain."""

from typing import Any, Optional


class ArgumentError(ValueError):
    """A constructor argument that the library cannot use.

    A `ValueError` whose `argument` attribute names the offending argument
    and whose `value` holds what was received, so that a caller that built
    the argument from its own settings (the config factory, the CLI) can
    name its own setting instead. The message follows Keras's style:
    what was expected, then "Received: argument=value".

    Args:
        argument: The argument's name, as the constructor spells it.
        value: The value received.
        expected: What the argument must be, as a clause ("must be ...").
        owner: Optional name of the class or function that refused it.
    """

    def __init__(self, argument: str, value: Any, expected: str,
                 owner: Optional[str] = None) -> None:
        self.argument = argument
        self.value = value
        self.owner = owner
        prefix = f"{owner}: " if owner else ""
        super().__init__(f"{prefix}`{argument}` {expected}. Received: {argument}={value!r}")
