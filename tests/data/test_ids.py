import pytest

from mockvox.data.ids import InvalidIdError, new_file_id, validate_file_id, validate_slice_key
from mockvox.data.store import DatasetStore


def test_new_ids_have_mockvox_format_and_are_unique():
    ids = {new_file_id() for _ in range(200)}
    assert len(ids) == 200
    for value in ids:
        assert validate_file_id(value) == value


@pytest.mark.parametrize(
    "bad",
    [
        "../etc/passwd",
        "20250522095117519601.e6abd9db.896806622ccb47a9ac1ee1669daf1938/../../x",
        "/abs/path",
        "20250522095117519601.e6abd9db.*",
        "20250522095117519601.e6abd9db",  # truncated (the old docs' example)
        "20250522095117519601.e6abd9db.896806622ccb47a9ac1ee1669daf193[",
        "2025052209511751960\\.e6abd9db.896806622ccb47a9ac1ee1669daf1938",
        "",
    ],
)
def test_traversal_and_globs_never_reach_the_file_system(tmp_path, bad):
    store = DatasetStore(tmp_path)
    with pytest.raises(InvalidIdError, match="invalid file id"):
        store.sliced_dir(bad)
    with pytest.raises(InvalidIdError):
        store.read_output(bad)


@pytest.mark.parametrize("bad", ["../x", "a/b", "*", "a b", "x" * 65])
def test_slice_keys_are_plain_stems(bad):
    with pytest.raises(InvalidIdError):
        validate_slice_key(bad)
