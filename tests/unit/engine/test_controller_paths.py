"""controller_paths: a host-derived name becomes a controller path only when it is one plain file name the
controller asked for, and never through a symlink (issue 12, item 1). Real files and links in tmp dirs."""
import os

import pytest
from fuzz_support import EXAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.armada.apparmor.plugins.module_utils import controller_paths as cp

HOSTILE = [
    ("../../X", "contains '/'"),
    ("a/b", "contains '/'"),
    ("/etc/passwd", "contains '/'"),
    ("..", "starts with '.'"),
    (".", "starts with '.'"),
    (".bashrc", "starts with '.'"),
    ("", "empty"),
    ("x\x00y", "U+0000"),
    ("x\ny", "U+000A"),
    ("x\ry", "U+000D"),
    ("x\x1b[2Jy", "U+001B"),
    ("x\x7f", "U+007F"),
    ("x\x85", "U+0085"),
    ("x\u2028y", "U+2028"),
    ("evil\u202etxt.yml", "U+202E"),
    ("x\udcffy", "U+DCFF"),
    ("a" * 256, "256 bytes long"),
    ("\u00e9" * 128, "256 bytes long"),
    (None, "not a string"),
    (["usr.bin.foo"], "not a string"),
]


@pytest.mark.parametrize("value,reason", HOSTILE, ids=[repr(v)[:30] for v, _ in HOSTILE])
def test_hostile_names_are_refused_naming_host_and_value(tmp_path, value, reason):
    with pytest.raises(cp.UnsafeName) as err:
        cp.target_path(str(tmp_path), value, "web2", "profile file name")
    msg = str(err.value)
    assert msg.startswith("web2: the profile file name ") and reason in msg and "nothing was written" in msg
    assert repr(value)[:40] in msg  # the refused value, with its control characters visible
    assert os.listdir(str(tmp_path)) == []


def test_plain_names_give_a_path_in_the_directory(tmp_path):
    for name in ("usr.bin.foo", "a" * 255, "\u00e9" * 127, "x..y", "profile with spaces", "web1.example.com.yml"):
        assert cp.target_path(str(tmp_path), name, "web1") == os.path.join(str(tmp_path), name)


def test_a_name_the_controller_did_not_ask_for_is_refused(tmp_path):
    asked = ["usr.bin.foo", "usr.sbin.nginx"]
    assert cp.target_path(str(tmp_path), "usr.sbin.nginx", "web1", allowed=asked).endswith("/usr.sbin.nginx")
    with pytest.raises(cp.UnsafeName, match=r"web1: .*'usr\.bin\.bar' is refused: the controller did not ask for "
                                            r"it \(it asked for 'usr\.bin\.foo', 'usr\.sbin\.nginx'\)"):
        cp.target_path(str(tmp_path), "usr.bin.bar", "web1", allowed=asked)
    with pytest.raises(cp.UnsafeName, match="asked for no file"):
        cp.target_path(str(tmp_path), "usr.bin.foo", "web1", allowed=[])


def test_snapshot_file_form(tmp_path):
    for good in ("20261125T130513336078Z.tar.gz", "20261125T130513336078Z.json"):
        assert cp.target_path(str(tmp_path), good, "db1", form="snapshot_file").endswith(good)
    for bad in ("20261125T130513336078Z.tar.gz.x", "20261125T130513336078Z", "x.tar.gz", "evil.json",
                "2026112T130513336078Z.json"):
        with pytest.raises(cp.UnsafeName, match="db1: .* is not a snapshot file"):
            cp.target_path(str(tmp_path), bad, "db1", form="snapshot_file")


def test_a_symlink_in_the_directory_is_never_written_through(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("keep")
    target = tmp_path / "profiles"
    target.mkdir()
    os.symlink(str(outside), str(target / "usr.bin.foo"))
    os.symlink(str(tmp_path / "nowhere"), str(target / "dangling"))
    for name in ("usr.bin.foo", "dangling"):
        with pytest.raises(cp.UnsafeName, match=r"web1: .*/profiles/%s is a symlink \(to .*\); the controller "
                                                r"never writes through a symlink" % name):
            cp.target_path(str(target), name, "web1")
    assert outside.read_text() == "keep"


def test_long_hostile_values_are_shortened_in_the_message(tmp_path):
    with pytest.raises(cp.UnsafeName) as err:
        cp.target_path(str(tmp_path), "../" * 10000, "web1")
    assert len(str(err.value)) < 400 and "characters)" in str(err.value)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(st.text(min_size=0, max_size=300),
                       st.text(alphabet=st.sampled_from("./\x00\n\u202e\udcffab"), max_size=12)))
def test_fuzz_controller_paths_any_accepted_name_stays_in_the_directory(tmp_path, value):
    """Whatever a host returns: refused, or a path whose parent is exactly the directory and whose name
    has no separator, no control character and fits NAME_MAX."""
    directory = str(tmp_path / "d")
    try:
        path = cp.target_path(directory, value, "h")
    except cp.UnsafeName as exc:
        assert str(exc).startswith("h: the file name ")
        return
    assert os.path.dirname(path) == directory and os.path.basename(path) == value
    assert os.path.realpath(path) == os.path.join(os.path.realpath(directory), value)
    assert value not in ("", ".", "..") and len(value.encode("utf-8")) <= cp.NAME_MAX
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or c in "\u2028\u2029\u202e" or 0xd800 <= ord(c) <= 0xdfff
                   for c in value)
