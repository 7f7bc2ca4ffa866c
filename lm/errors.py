"""The errors a user can cause. The CLI prints them as one line; the library raises them."""


class LMError(Exception):
    """A problem the user can fix: bad input, a missing or damaged file. Exit code 1."""

    exit_code = 1


class ConfigError(LMError):
    """A setting out of its range (a bad flag value). Exit code 2, like a usage error."""

    exit_code = 2
