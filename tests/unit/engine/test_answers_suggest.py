"""Glob suggestions and the pending block (docs/answers.md, "Pending answers").

Expected globs are written from aa-logprof's glob rules (aare.py glob_path / glob_path_withext, the
.so version globs of aa.py glob_common, the /proc and /home globs of logprof.conf) restricted as
docs/answers.md says (never above the grandparent, never /**).
"""
import pytest

from ansible_collections.armada.apparmor.plugins.module_utils import aaglob, suggest


@pytest.mark.parametrize("path, expected", [
    ("/a/b/c.ext", ["/a/b/c.ext", "/a/b/*.ext", "/a/b/*", "/a/**.ext", "/a/**"]),
    ("/etc/passwd", ["/etc/passwd", "/etc/*"]),
    ("/srv/www/index.html", ["/srv/www/index.html", "/srv/www/*.html", "/srv/www/*", "/srv/**.html", "/srv/**"]),
    ("/home/user/.ssh/", ["/home/user/.ssh/", "@{HOME}/.ssh/", "/home/*/.ssh/", "/home/user/*/", "/home/**/"]),
    ("/proc/21622/cmdline", ["/proc/21622/cmdline", "@{PROC}/@{pid}/cmdline", "/proc/*/cmdline", "/proc/21622/*",
                             "/proc/**"]),
    ("/usr/lib/x86_64-linux-gnu/libssl.so.3",
     ["/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/lib/x86_64-linux-gnu/libssl.so.*",
      "/usr/lib/@{multiarch}/libssl.so.3", "/usr/lib/x86_64-linux-gnu/*.3", "/usr/lib/x86_64-linux-gnu/*",
      "/usr/lib/**.3", "/usr/lib/**"]),
])
def test_glob_suggestions(path, expected):
    assert suggest.glob_suggestions(path) == expected


def test_versioned_library_before_the_so():
    globs = suggest.glob_suggestions("/lib/x86_64-linux-gnu/libdl-2.13.so")
    assert "/lib/x86_64-linux-gnu/libdl-*.so" in globs
    assert "/lib/x86_64-linux-gnu/*.so" in globs and "/lib/**.so" in globs


def test_every_suggestion_covers_the_path_and_gets_broader():
    # (/home/<user> and /proc/<pid> globs generalise a different component, so they are not in the chain)
    for path in ("/a/b/c.ext", "/var/log/nginx/access.log.1", "/usr/lib/libz.so.1.2.13", "/var/cache/x/"):
        globs = suggest.glob_suggestions(path)
        assert globs[0] == path
        for g in globs:
            assert aaglob.matches(g, path), (g, path)
        # the last one is the broadest: it covers every other suggestion
        for g in globs:
            assert aaglob.glob_covers(globs[-1], g), (globs[-1], g)


def test_never_root_double_star():
    for path in ("/x", "/etc/passwd", "/tmp/", "/a/b"):
        assert "/**" not in suggest.glob_suggestions(path)
        assert "/**/" not in suggest.glob_suggestions(path)


@pytest.mark.parametrize("path", ["/tmp/a*b", "/tmp/{x,y}/f", "/tmp/[1]", "/tmp/q?", "/tmp/back\\slash",
                                  "/tmp/@{HOME}"])
def test_glob_characters_in_names_are_escaped(path):
    globs = suggest.glob_suggestions(path)
    # the first suggestion matches exactly this one name, not others
    assert aaglob.matches(globs[0], path)
    assert not aaglob.matches(globs[0], path.replace("/tmp/", "/tmp/z"))
    for g in globs:
        assert aaglob.matches(g, path, variables={}), g


def test_not_a_path():
    assert suggest.glob_suggestions("relative") == []
    assert suggest.glob_suggestions(None) == []


# ---- pending entries and YAML text -----------------------------------------------------------------

def result_with(pending, children=None):
    entry = {"rules": [], "deny": [], "ignored": [], "pending": pending, "unsupported": [], "children": {}}
    for name, evs in (children or {}).items():
        entry["children"][name] = {"rules": [], "deny": [], "ignored": [], "pending": evs, "unsupported": [],
                                   "hat": True}
    return {"abi": "3.0", "profiles": {"/usr/sbin/nginx": entry}, "conflicts": [], "errors": [], "stats": {}}


FILE_EVENT = {"kind": "file", "profile": "/usr/sbin/nginx", "path": "/srv/www/a b,c.html", "owner": True,
              "mask": {"requested": "r", "denied": "r"}, "hosts": {"web2": 1, "web1": 3}, "count": 4,
              "id": "0123456789abcdef", "reason": "no answer matches"}


def test_pending_entry_is_an_answer_in_the_schema():
    from ansible_collections.armada.apparmor.plugins.module_utils import answers
    items = suggest.pending_list(result_with([FILE_EVENT]))
    assert len(items) == 1
    item = items[0]
    assert item["profile"] == "/usr/sbin/nginx"
    assert item["match"] == {"kind": "file", "path": "/srv/www/a b,c.html", "mask": "r"}
    assert item["answer"] == "pending" and item["owner"] is True
    assert item["hosts"] == ["web1", "web2"] and item["counts"] == {"web1": 3, "web2": 1}
    assert item["suggestions"]["globs"][0] == "/srv/www/a b,c.html"
    # pasted back as is it validates, and flipping answer to allow with a suggested glob validates too
    answers.validate_answers([item])
    item = dict(item, answer="allow", glob=item["suggestions"]["globs"][2])
    answers.validate_answers([item])


def test_pending_children_use_the_full_label_and_exec_gets_modes():
    exec_ev = {"kind": "exec", "profile": "/usr/sbin/nginx//null-1", "path": "/usr/bin/logger",
               "mask": {"requested": "x", "denied": "x"}, "host": "web1", "count": 1,
               "label": "/usr/sbin/nginx//null-1"}
    items = suggest.pending_list(result_with([], children={"null-1": [exec_ev]}))
    assert items[0]["profile"] == "/usr/sbin/nginx//null-1"
    assert items[0]["match"] == {"kind": "exec", "path": "/usr/bin/logger"}
    assert items[0]["suggestions"]["exec_modes"][0] == "ix"
    assert items[0]["hosts"] == ["web1"]


def test_pending_list_rejects_what_is_not_a_result():
    with pytest.raises(ValueError):
        suggest.pending_list({"events": []})


# The YAML text (PyYAML, !unsafe tags) is the filter's: tests/unit/plugins/test_pending_file.py.


# ---- abstractions that already cover an event ------------------------------------------------------

def write(base, rel, text):
    import os
    path = os.path.join(base, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def file_event(path, mask="r", owner=False):
    return {"kind": "file", "path": path, "mask": {"requested": mask, "denied": mask}, "owner": owner}


@pytest.fixture()
def apparmor_d(tmp_path):
    base = str(tmp_path)
    write(base, "tunables/global", "@{HOME}=/home/*/ /root/\n")
    write(base, "abstractions/web-content", "/srv/www/** r,\n")
    write(base, "abstractions/web-wrapper", "include <abstractions/web-content>\n/var/www/** r,\n")
    write(base, "abstractions/user-files", "/srv/** r,\n@{HOME}/** r,\nowner /srv/** w,\n")
    write(base, "abstractions/no-secrets", "/srv/www/** r,\ndeny /srv/www/secret r,\n")
    write(base, "abstractions/owner-only", "owner /srv/www/** rw,\n")
    return base


def test_only_narrow_enough_abstractions_are_suggested(apparmor_d):
    index = suggest.AbstractionIndex(apparmor_d)
    # user-files covers through /srv/** (a whole top-level tree): never suggested; the wrapper covers
    # only through web-content, so web-content (the narrower) is suggested instead of it
    assert index.covering(file_event("/srv/www/index.html")) == ["abstractions/no-secrets", "abstractions/web-content"]
    # a deny inside the abstraction: not suggested for that path
    assert index.covering(file_event("/srv/www/secret")) == ["abstractions/web-content"]
    # owner rules only cover owner events
    assert "abstractions/owner-only" in index.covering(file_event("/srv/www/a", "w", owner=True))
    assert index.covering(file_event("/srv/www/a", "w", owner=False)) == []
    # only user-files covers /srv/data/x and @{HOME}: too broad, nothing suggested
    assert index.covering(file_event("/srv/data/x")) == []
    assert index.covering(file_event("/home/bob/.bashrc")) == []


def test_wrapper_is_suggested_for_what_only_it_grants(apparmor_d):
    index = suggest.AbstractionIndex(apparmor_d)
    assert index.covering(file_event("/var/www/index.html")) == ["abstractions/web-wrapper"]
    # /var/www/** is outside the tree of /var/www/site/: broader than needed there
    assert index.covering(file_event("/var/www/site/index.html")) == []


def test_missing_directory_means_no_include_suggestions(tmp_path):
    assert suggest.AbstractionIndex(str(tmp_path / "none")).covering(file_event("/etc/passwd")) == []


def test_pending_entry_lists_includes(apparmor_d):
    index = suggest.AbstractionIndex(apparmor_d)
    entry = suggest.pending_entry(dict(FILE_EVENT, path="/srv/www/a.html", owner=False), "/usr/sbin/nginx", index)
    assert entry["suggestions"]["includes"] == ["abstractions/no-secrets", "abstractions/web-content"]


@pytest.mark.parametrize("pattern, path, ok", [
    ("/etc/ssl/certs/*", "/etc/ssl/certs/ca.pem", True),
    ("/srv/**", "/srv/www/index.html", False),
    ("/srv/**", "/srv/x", False),
    ("/etc/passwd", "/etc/passwd", True),
    ("/usr/share/zoneinfo/**", "/usr/share/zoneinfo/Europe/Paris", False),
    ("/usr/share/zoneinfo/**", "/usr/share/zoneinfo/UTC", True),
    ("/home/*/.ssh/**", "/home/bob/.ssh/id", False),
])
def test_breadth_rule(pattern, path, ok):
    assert suggest.abstraction_rule_ok(pattern, path) is ok


def test_real_user_files_is_never_suggested_for_srv():
    import os
    if not os.path.isfile("/etc/apparmor.d/abstractions/ubuntu-browsers.d/user-files"):
        pytest.skip("the apparmor package's abstractions are not installed here (make apt installs them)")
    index = suggest.AbstractionIndex("/etc/apparmor.d")
    for path in ("/srv/www/index.html", "/srv/x"):
        assert not any("user-files" in n for n in index.covering(file_event(path)))
    assert "abstractions/ssl_certs" in index.covering(file_event("/etc/ssl/certs/ca-certificates.crt"))
