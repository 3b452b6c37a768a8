"""Shared run-time plumbing (vgs/runtime.py)."""
import pytest


def test_a_damaged_cache_names_the_file_and_the_rebuild_command(tmp_path):
    from vgs.runtime import CacheError, open_h5

    bad = tmp_path / "regions.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # an HDF5 signature, then nothing
    with pytest.raises(CacheError, match=r"regions.h5: cannot read.*--forcerun .*regions.h5"):
        open_h5(bad)


def test_a_damaged_model_is_a_cache_error_and_a_damaged_checkpoint_is_ignored(tmp_path):
    import os

    import torch

    from vgs.runtime import CacheError, load_torch

    path = tmp_path / "model.pt"
    torch.save({"state": torch.zeros(4096)}, path)
    assert load_torch(path)["state"].shape == (4096,)
    os.truncate(path, path.stat().st_size // 2)  # an interrupted copy
    with pytest.raises(CacheError, match=r"model.pt: cannot read this torch file .*--forcerun .*model.pt"):
        load_torch(path)
    assert load_torch(path, resume=True) is None  # a checkpoint: training starts afresh


def test_the_corpus_digest_sees_an_edit_inside_a_directory(tmp_path):
    import os

    from vgs.corpus.manifest import corpus_files, digest

    corpus, outside = tmp_path / "corpus", tmp_path / "audio"
    (corpus / "wavs").mkdir(parents=True)
    outside.mkdir()
    (corpus / "wavs" / "a.wav").write_bytes(b"1234")
    (outside / "b.wav").write_bytes(b"12")
    (corpus / "wav.scp").write_text(f"a wavs/a.wav\nb sph2pipe -f wav {outside / 'b.wav'} |\n")
    rows = corpus_files([corpus])
    assert [(os.path.relpath(p, tmp_path), n) for p, n, _ in rows] == [
        ("audio/b.wav", 2), ("corpus/wav.scp", (corpus / "wav.scp").stat().st_size), ("corpus/wavs/a.wav", 4)]
    d0 = digest([corpus])
    assert digest([corpus]) == d0  # nothing changed: same params, nothing reruns
    (outside / "b.wav").write_bytes(b"21")  # same size, a later mtime: a file named by wav.scp
    t = (outside / "b.wav").stat().st_mtime_ns + 10**9  # (file times tick in ms: make it later)
    os.utime(outside / "b.wav", ns=(t, t))
    d1 = digest([corpus])
    (corpus / "wavs" / "a.wav").write_bytes(b"12345")  # an edit in a subdirectory
    assert len({d0, d1, digest([corpus])}) == 3
