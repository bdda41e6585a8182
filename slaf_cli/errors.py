"""Exceptions that the command line turns into a one-line message."""


class ConfigError(ValueError):
    """An invalid user setting. The message names the value and the fix."""
