"""Shared pytest markers (imported by test modules; pytest puts this folder on sys.path)."""

from __future__ import annotations

import pytest

from oarl.lab.math.data import data_dir


def _data_available() -> bool:
    try:
        data_dir()
        return True
    except FileNotFoundError:
        return False


needs_data = pytest.mark.skipif(not _data_available(), reason="no local benchmark data (../shared/data)")
