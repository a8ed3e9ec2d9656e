"""The checkpoint series the analysis tests share."""

from __future__ import annotations

import pytest

from tests.bench.analyses.support import write_card


@pytest.fixture(scope="module")
def cards(tmp_path_factory):
    root = tmp_path_factory.mktemp("cards")
    return [write_card(root, "tiny-e1", epochs=1), write_card(root, "tiny-e2", epochs=2)]
