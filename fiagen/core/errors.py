"""The base of every error a user can cause (bad input, missing data); the CLI prints each as one line."""


class FiagenError(Exception):
    """A user-facing failure whose message is one complete line."""


class ShardError(FiagenError):
    """A precompute output (shard, manifest, run report) that is missing, unreadable, of another schema,
    or not the file its checksum names."""


def first_line(err: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def message_line(err: BaseException) -> str:
    """The first line of an exception's message, or its type's name when the message is empty."""
    text = str(err)
    return text.splitlines()[0] if text else type(err).__name__


def last_line(err: BaseException, limit: int = 300) -> str:
    """The last line of an exception's message, at most `limit` characters: the worker's own error in a
    Ray error, whose message starts with the remote traceback."""
    lines = str(err).strip().splitlines()
    return lines[-1][:limit] if lines else type(err).__name__
