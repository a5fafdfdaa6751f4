"""The one exception type for mistakes a user can fix: the CLI prints it as a paragraph and exits 2."""


class UserError(Exception):
    """A bad input (flag, file, checkpoint, dataset) explained in one paragraph; never a traceback."""

    exit_code = 2
