"""The reportgen package's one exception type: the CLI turns it into one line and exit status 2."""


class ReportError(ValueError):
    """A reportgen failure the user can act on: says where, what was expected and what was found."""
