"""The one exception type that means "the user gave us something wrong"."""


class InputError(ValueError):
    """Bad user input: a flag value, a data file, a model folder.

    The CLI prints the message as a single line and exits with status 2, so the
    message must say what was passed, what was expected and how to fix it.
    Library callers can catch it as a plain `ValueError`.
    """
