"""The one error the harness raises for anything that stops a benchmark run."""


class BenchError(Exception):
    """A benchmark could not run (missing tool, monitor failed to start, bad output)."""
