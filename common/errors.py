"""Errors that reach the user as one line (no traceback).

Raise ``UserError`` for anything the user can fix: the message names the file or field
and says what to do. ``cli.main`` prints it as ``tonesweep: error: <message>`` and exits 2.
"""


class UserError(Exception):
    """A problem with the user's input, reported as one clear line."""
