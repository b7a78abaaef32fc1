"""The probe package's one exception type: the CLI turns it into one line and exit status 2."""


class ProbeError(ValueError):
    """A probe failure the user can act on: says where, what was expected and what was found."""
