"""The one error of the harness."""


class HarnessError(RuntimeError):
    """The benchmark could not measure: a setup step or a tool failed."""
