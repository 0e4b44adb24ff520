"""Errors that the command line reports as one line (a user mistake), never as a traceback."""


class UserError(Exception):
    """A mistake in the user's input: a bad file, option, dataset name or bit width."""
