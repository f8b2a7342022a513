"""The project's one user-facing exception type."""


class JoulesimError(Exception):
    """A user-facing error: one line, no traceback; the CLI turns it into exit code 2."""
