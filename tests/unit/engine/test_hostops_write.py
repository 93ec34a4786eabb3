"""hostops.write_changes on a real full disk: a change spanning a profile and its local/ include is all or nothing."""
import os

import pytest

from ansible_collections.armada.apparmor.plugins.module_utils import fileops, hostops


@pytest.fixture
def small_fs(tiny_fs):
    """The 64 KiB tmpfs (conftest): big enough for the small file, too small for the big one."""
    (tiny_fs / "local").mkdir()
    return tiny_fs


def tree(root):
    out = {}
    for base, _dirs, files in os.walk(str(root)):
        for name in files:
            full = os.path.join(base, name)
            with open(full, "rb") as handle:
                out[os.path.relpath(full, str(root))] = handle.read()
    return out


def test_second_file_full_disk_puts_the_first_back(small_fs):
    (small_fs / "prof").write_bytes(b"profile prof {\n}\n")
    before = tree(small_fs)
    # local/prof is new and fits; the profile (written second, sorted order) does not fit
    changes = {"local/prof": b"/etc/x r,\n", "prof": b"x" * (1 << 20)}
    with pytest.raises(fileops.FileOpError) as err:
        hostops.write_changes(changes, str(small_fs), old={"local/prof": None, "prof": before["prof"]})
    assert "no space left on device" in str(err.value) and "put back, nothing was changed" in str(err.value)
    assert tree(small_fs) == before  # local/prof removed again, prof untouched, no temp file


def test_without_old_contents_the_first_file_stays_written(small_fs):
    """The check above can see a difference: without ``old`` the first file is left written (the old behaviour)."""
    (small_fs / "prof").write_bytes(b"profile prof {\n}\n")
    with pytest.raises(fileops.FileOpError):
        hostops.write_changes({"local/prof": b"/etc/x r,\n", "prof": b"x" * (1 << 20)}, str(small_fs))
    assert tree(small_fs)["local/prof"] == b"/etc/x r,\n"


def test_all_written_when_there_is_room(small_fs):
    (small_fs / "prof").write_bytes(b"profile prof {\n}\n")
    done = hostops.write_changes({"local/prof": b"/etc/x r,\n", "prof": b"profile prof {\n  include <local/prof>\n}\n"},
                                 str(small_fs), old={"local/prof": None, "prof": b"profile prof {\n}\n"})
    assert done == ["local/prof", "prof"]
    assert tree(small_fs)["prof"].startswith(b"profile prof {\n  include")


def test_put_back_restores_removes_and_names_what_it_cannot_restore(small_fs):
    """The undo the profile and rules modules run when the kernel refuses a reload."""
    (small_fs / "prof").write_bytes(b"profile prof { /new r, }\n")
    (small_fs / "local" / "prof").write_bytes(b"/new r,\n")
    old = {"prof": b"profile prof {\n}\n", "local/prof": None, "big": b"x" * (1 << 20)}
    stuck = hostops.put_back(["prof", "local/prof", "big"], old, str(small_fs))
    assert tree(small_fs) == {"prof": b"profile prof {\n}\n"}  # restored, new file removed, no temp left
    assert len(stuck) == 1 and "no space left on device" in stuck[0]
    assert "could NOT all be put back" in hostops.put_back_note(stuck) and stuck[0] in hostops.put_back_note(stuck)
    assert hostops.put_back_note([]) == "the previous files were put back"
