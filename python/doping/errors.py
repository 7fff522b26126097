"""The one exception type the CLI turns into a readable message and a non-zero exit."""


class DopingError(Exception):
    """A user-facing error: bad input, impossible config, malformed pack.

    The message names the problem; the CLI prints it without a traceback.
    """


class PackError(DopingError):
    """A model pack (or a layer meant for one) is malformed or inconsistent."""
