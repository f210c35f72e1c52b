"""Process plumbing shared by the programs (common/lifecycle.py)."""

from __future__ import annotations

import gc

import pytest

from common.lifecycle import young_collections_every


def test_the_young_generation_is_resized_for_the_block_and_restored_after_it() -> None:
    before = gc.get_threshold()
    with young_collections_every(20_000):
        assert gc.get_threshold() == (20_000, *before[1:])
    assert gc.get_threshold() == before


def test_the_threshold_is_restored_when_the_program_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), young_collections_every(50_000):
        raise RuntimeError("the program stopped on an error")
    assert gc.get_threshold() == before
