"""ringwatch's version: the installed distribution's (pyproject.toml), for --version and metrics."""

from __future__ import annotations

from importlib import metadata


def version() -> str:
    try:
        return metadata.version("ringwatch")
    except metadata.PackageNotFoundError:  # running from a tree that was never installed
        return "0+unknown"
