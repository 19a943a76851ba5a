"""The one exception type that means "the user gave us something wrong"."""


class InputError(ValueError):
    """Bad user input: a flag value, a data file, a model folder.

    The CLI prints the message as a single line and exits with status 2, so the
    message must say what was passed, what was expected and how to fix it.
    Library callers can catch it as a plain `ValueError`.
    """


def one_line(text: str) -> str:
    """`text` with every unprintable character escaped, as Python writes it in a
    string literal (a newline as \\n): a path with a newline in its name must
    not turn a one-line error into two."""
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
                   for char in text)
