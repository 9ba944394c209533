"""The real layer starts its longest files first (tests/conftest.py): the list names files that exist."""

from __future__ import annotations

from tests.conftest import LONGEST_FILES_FIRST, ROOT


def test_every_file_started_first_is_a_test_file_of_the_real_layer() -> None:
    for path in LONGEST_FILES_FIRST:
        source = (ROOT / path).read_text()
        assert "pytest.mark.platform" in source, f"{path} must be an engine or platform test file"
