"""The one exception a command raises for the user's mistakes (exit code 2, one line)."""


class UsageError(Exception):
    """Bad arguments or an unreadable / invalid input file. The message is shown as is."""
