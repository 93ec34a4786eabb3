"""fileops: temp names AppArmor never loads, atomic replace, clean failures (full disk, read-only fs)."""
import os
import subprocess

import pytest
from aa_support import PARSER
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.armada.apparmor.plugins.module_utils import fileops

GOOD = b"profile armada-good {\n  /tmp/x r,\n}\n"
BAD = b"profile armada-bad {\n  /tmp/x rzq,\n}\n"  # not permissions: a parse error if ever loaded


def test_skip_rules_follow_apparmor_docs():
    # apparmor.common.is_skippable_file / libapparmor _aa_is_blacklisted: hidden, README, package leftovers
    for name in (".hidden", "README", "x.dpkg-new", "x.dpkg-old", "x.dpkg-dist", "x.dpkg-bak", "x.dpkg-remove",
                 "x.pacsave", "x.pacnew", "x.rpmnew", "x.rpmsave", "x.orig", "x.rej", "x~"):
        assert fileops.is_skippable_name(name), name
    for name in ("usr.bin.man", "x.bak", "x.tmp", "x.swp", "README.md", "local"):
        assert not fileops.is_skippable_name(name), name


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=60))
def test_temp_names_are_always_skippable(tmp_path_factory, hint):
    directory = str(tmp_path_factory.mktemp("t"))
    tmp = fileops.make_temp(directory, hint)
    try:
        assert os.path.dirname(tmp) == directory
        assert fileops.is_skippable_name(tmp)
        assert os.path.basename(tmp).startswith(".") and tmp.endswith("~")
    finally:
        os.unlink(tmp)


@pytest.mark.parser
def test_real_parser_skips_our_temp_file_but_loads_a_bak(tmp_path):
    """The reason for the naming: a directory load reads x.bak as a profile, never our temp file."""
    d = tmp_path / "aa"
    d.mkdir()
    (d / "good").write_bytes(GOOD)
    tmp = fileops.write_temp(str(d), BAD, hint="good")
    ok = subprocess.run([PARSER, "-QK", "--base", str(d), str(d)], capture_output=True, check=False)
    assert ok.returncode == 0, ok.stderr
    os.rename(tmp, str(d / "good.bak"))
    bad = subprocess.run([PARSER, "-QK", "--base", str(d), str(d)], capture_output=True, check=False)
    assert bad.returncode != 0 and b"good.bak" in bad.stderr


def test_atomic_write_replaces_keeps_mode_and_leaves_nothing(tmp_path):
    target = tmp_path / "prof"
    target.write_bytes(b"old")
    os.chmod(str(target), 0o640)
    fileops.atomic_write(str(target), b"new contents")
    assert target.read_bytes() == b"new contents"
    assert oct(os.stat(str(target)).st_mode & 0o777) == oct(0o640)
    assert os.listdir(str(tmp_path)) == ["prof"]
    fileops.atomic_write(str(tmp_path / "sub" / "fresh"), b"x")
    assert oct(os.stat(str(tmp_path / "sub" / "fresh")).st_mode & 0o777) == oct(0o644)


def test_atomic_symlink_and_remove(tmp_path):
    link = str(tmp_path / "disable" / "prof")
    fileops.atomic_symlink("../prof", link)
    assert os.readlink(link) == "../prof"
    fileops.atomic_symlink("../other", link)
    assert os.readlink(link) == "../other"
    assert fileops.remove(link) is True
    assert fileops.remove(link) is False
    assert os.listdir(str(tmp_path / "disable")) == []


def test_full_disk_fails_cleanly_and_keeps_old_file(tiny_fs):
    target = tiny_fs / "prof"
    target.write_bytes(GOOD)
    with pytest.raises(fileops.FileOpError) as err:
        fileops.atomic_write(str(target), b"x" * (1 << 20))
    assert "no space" in str(err.value)
    assert target.read_bytes() == GOOD
    assert os.listdir(str(tiny_fs)) == ["prof"]


def test_read_only_fs_fails_cleanly(tiny_fs):
    target = tiny_fs / "prof"
    target.write_bytes(GOOD)
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    with pytest.raises(fileops.FileOpError) as err:
        fileops.atomic_write(str(target), b"new")
    assert "read-only" in str(err.value)
    with pytest.raises(fileops.FileOpError):
        fileops.atomic_symlink("../prof", str(tiny_fs / "link"))
    assert target.read_bytes() == GOOD
    assert os.listdir(str(tiny_fs)) == ["prof"]
