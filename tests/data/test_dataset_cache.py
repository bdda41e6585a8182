"""Cache files: atomic writes, validation on load and read-only folders."""

from __future__ import annotations

from pathlib import Path

import torch

from slaf_cli.data import cache

DTYPES = {"x": torch.uint8, "y": torch.int64}


def sample_tensors() -> dict[str, torch.Tensor]:
    return {
        "x": torch.arange(24, dtype=torch.uint8).view(2, 3, 4),
        "y": torch.arange(2),
    }


def test_save_then_load_roundtrip(tmp_path):
    path = cache.save_cached([tmp_path / "a.pt"], sample_tensors())
    loaded = cache.load_cached(tmp_path / "a.pt", DTYPES)
    assert path == tmp_path / "a.pt"
    assert loaded is not None
    assert torch.equal(loaded["x"], sample_tensors()["x"])
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]  # no temporary left


def test_wrong_dtype_discards_file(tmp_path):
    path = tmp_path / "a.pt"
    cache.save_cached([path], sample_tensors())
    assert cache.load_cached(path, {"x": torch.float32, "y": torch.int64}) is None
    assert not path.exists()


def test_foreign_payload_discards_file(tmp_path):
    path = tmp_path / "a.pt"
    torch.save(sample_tensors(), path)  # a valid torch file without digest
    assert cache.load_cached(path, DTYPES) is None
    assert not path.exists()


def test_missing_file_returns_none(tmp_path):
    assert cache.load_cached(tmp_path / "absent.pt", DTYPES) is None


def test_read_only_folder_skipped(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        written = cache.save_cached(
            [locked / "sub" / "a.pt", tmp_path / "open" / "a.pt"], sample_tensors()
        )
    finally:
        locked.chmod(0o755)
    assert written == tmp_path / "open" / "a.pt"
    assert not (locked / "sub").exists()


def test_no_writable_folder_returns_none(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert cache.save_cached([locked / "a.pt"], sample_tensors()) is None
    finally:
        locked.chmod(0o755)


def test_user_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.user_cache_dir() == tmp_path / "slaf_cli"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.user_cache_dir() == Path.home() / ".cache" / "slaf_cli"


def test_source_key_tracks_file_size(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    before = cache.source_key(tmp_path, ["f"])
    assert cache.source_key(tmp_path, ["f"]) == before
    (tmp_path / "f").write_bytes(b"abcd")
    assert cache.source_key(tmp_path, ["f"]) != before
