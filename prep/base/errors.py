"""The one error a person sees: an expected problem they can fix, printed as one line without a traceback."""


class UserError(Exception):
    """An expected problem the user can fix (bad input, missing tool): printed as one line, without a traceback."""
