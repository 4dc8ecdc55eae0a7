"""The one error a person sees: an expected problem they can fix, printed as one line without a traceback."""


class UserError(Exception):
    """An expected problem the user can fix (bad input, missing tool): printed as one line, without a traceback."""


MESSAGE_CHARS = 1000  # the longest error line printed: a message quoting outside data (a member name, a config
# value) must not become megabytes of "one line"


def one_line(text, limit=MESSAGE_CHARS):
    """``text`` on one line (whitespace runs, newlines included, become one space), cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else f"{text[:limit]}…[+{len(text) - limit} chars]"
