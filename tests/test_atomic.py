"""bn_core.atomic.atomic_path: the one way every room writes a file (all or nothing)."""

from __future__ import annotations

import stat

import pytest

from bn_core.atomic import atomic_path
from bn_core.runs import artifacts


def test_a_finished_write_replaces_the_file_readable_by_others(tmp_path):
    target = tmp_path / "sub" / "result.json"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".result.json.")
        tmp.write_text("new")
        assert not target.exists()  # nothing visible before the end
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target, suffix=".keras") as tmp:
        assert tmp.name.endswith(".keras")
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_artifacts_write_text_and_save_model_go_through_it(tmp_path):
    artifacts.write_text(tmp_path / "a.txt", "héllo")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"

    class Model:  # what save_model needs of a Keras model: save(path) to a .keras name
        def save(self, path):
            assert str(path).endswith(".keras")
            path.write_bytes(b"zip")

    artifacts.save_model(Model(), tmp_path / "m.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "m.keras"]
