"""The embedded default's generated secrets stay private to their owner."""

from __future__ import annotations

from pathlib import Path

from local_stack.secrets import write_private


def test_the_development_key_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    key = tmp_path / "dev-api-key"
    key.write_text("old\n")
    key.chmod(0o644)  # as an earlier version left it
    write_private(key, "new\n")
    assert key.read_text() == "new\n"
    assert key.stat().st_mode & 0o777 == 0o600
