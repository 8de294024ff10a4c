from __future__ import annotations

import os

import pytest


@pytest.fixture
def root() -> None:
    """Kernel tests run for real: not being root is a failure, not a skip."""
    assert os.geteuid() == 0, "kernel tests need root (CI runs as root)"
