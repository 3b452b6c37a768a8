"""Shared run-time plumbing (vgs/runtime.py)."""
import pytest


def test_a_damaged_cache_names_the_file_and_the_rebuild_command(tmp_path):
    from vgs.runtime import CacheError, open_h5

    bad = tmp_path / "regions.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # an HDF5 signature, then nothing
    with pytest.raises(CacheError, match=r"regions.h5: cannot read.*--forcerun .*regions.h5"):
        open_h5(bad)
