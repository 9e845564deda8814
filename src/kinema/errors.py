"""Errors every command shares, in a module that imports nothing of kinema's."""


class UsageError(Exception):
    """A bad argument: `kinema` prints it as one sentence and exits with code 2."""
