"""Data preparation for actionflow: datasets, downloads, archives, frames, flow, annotations, checks.

Every stage is one module with one public function and a CLI verb (``python -m prep <verb>``).
"""


class UserError(Exception):
    """An expected problem the user can fix (bad input, missing tool): printed as one line, without a traceback."""
