"""The one exception type the CLI turns into a single error line and exit status 2."""


class HarnessError(Exception):
    """A user-facing failure: bad input, a missing or malformed file, an unreachable source.

    The message is one line that says what is wrong and, where possible, how to fix it.
    """
