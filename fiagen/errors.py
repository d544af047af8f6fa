"""The base of every error a user can cause (bad input, missing data); the CLI prints each as one line."""


class FiagenError(Exception):
    """A user-facing failure whose message is one complete line."""
