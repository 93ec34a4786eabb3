"""armada.apparmor.status through real ansible-playbook.

Two situations: this machine's real kernel (no AppArmor: everything about files is still reported,
drift is 'not checked' with the reason) and a securityfs tree laid out like the kernel's
(profiles list, policy/profiles/*/name, raw_data), whose contents the test derives itself: the
loaded blob of one profile is what the real apparmor_parser compiles from its file, of another what
it compiles from an older text.
"""
import hashlib
import os
import subprocess

from aa_playbook import make_tree, run_tasks, tree_state

DEMO = """abi <abi/3.0>,
include <tunables/global>
profile armada-demo /usr/bin/armada-demo {
  include <abstractions/base>
  /etc/armada-demo.conf r,
}
"""
OTHER = """abi <abi/3.0>,
include <tunables/global>
/usr/bin/armada-other flags=(complain,attach_disconnected) {
  include <abstractions/base>
  /var/lib/armada-other/** rw,
}
"""
IDLE = "profile armada-idle {\n  /tmp/x r,\n}\n"
OFF = "profile armada-off {\n}\n"


def _compile(tree, text):
    proc = subprocess.run(["apparmor_parser", "-QKS", "--base", tree, "-I", tree], input=text.encode(),
                          capture_output=True, check=True)
    return proc.stdout


def _write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def _fill(tree):
    _write(os.path.join(tree, "usr.bin.armada-demo"), DEMO)
    _write(os.path.join(tree, "usr.bin.armada-other"), OTHER)
    _write(os.path.join(tree, "armada-idle"), IDLE)
    _write(os.path.join(tree, "armada-off"), OFF)
    os.symlink("../armada-off", os.path.join(tree, "disable", "armada-off"))
    _write(os.path.join(tree, "README"), "not a profile\n")


def test_status_without_kernel_apparmor(tmp_path):
    tree = make_tree(tmp_path)
    _fill(tree)
    before = tree_state(tree)
    res, = run_tasks(tmp_path, [{"armada.apparmor.status": {"apparmor_d": tree}}], check=True)
    assert tree_state(tree) == before
    assert not res["changed"]
    assert res["kernel"]["enabled"] is False and res["kernel"]["reason"]
    assert res["parser"]["available"] and res["parser"]["version"].startswith("3.")
    assert res["abi"]["render"] == "3.0" and "3.0" in res["abi"]["supported"]
    assert res["loaded"] == {}
    assert sorted(res["files"]) == ["armada-idle", "armada-off", "usr.bin.armada-demo", "usr.bin.armada-other"]
    other = res["files"]["usr.bin.armada-other"]
    assert other["profiles"] == {"/usr/bin/armada-other": {"flags": ["complain", "attach_disconnected"],
                                                           "mode": "complain"}}
    assert other["sha256"] == hashlib.sha256(OTHER.encode()).hexdigest()
    assert res["files"]["armada-off"]["disabled"] and res["files"]["armada-off"]["profiles"]["armada-off"]["mode"] == \
        "disabled"
    assert res["disable_links"] == ["armada-off"]
    assert res["drift_checked"] is False and "no AppArmor" in res["drift_reason"]
    assert res["drifted"] is False
    assert res["ansible_facts"]["apparmor_status"]["files"] == res["files"]


def test_status_drift_against_a_securityfs_tree(tmp_path):
    tree = make_tree(tmp_path)
    _fill(tree)
    sfs = tmp_path / "securityfs"
    (sfs / "features").mkdir(parents=True)
    # demo: loaded in complain although the file says enforce, from the current text
    # other: loaded in complain as declared, but from an older text (content drift)
    # idle: not loaded; off: disabled and not loaded; stray: loaded without a file
    (sfs / "profiles").write_text("armada-demo (complain)\n/usr/bin/armada-other (complain)\n"
                                  "armada-stray (enforce)\narmada-stray//hat (enforce)\n")
    blobs = {"armada-demo": _compile(tree, DEMO),
             "/usr/bin/armada-other": _compile(tree, OTHER.replace(" rw,", " r,"))}
    for i, (name, blob) in enumerate(sorted(blobs.items())):
        pdir = sfs / "policy" / "profiles" / ("p.%d" % i)
        pdir.mkdir(parents=True)
        (pdir / "name").write_text(name + "\n")
        (pdir / "raw_data").write_bytes(blob)
    res, = run_tasks(tmp_path, [{"armada.apparmor.status": {"apparmor_d": tree, "securityfs": str(sfs)}}])
    assert res["kernel"]["enabled"] is True
    assert res["loaded"]["armada-demo"] == "complain"
    assert res["drift_checked"] is True
    drift = res["drift"]
    assert [d["profile"] for d in drift["not_loaded"]] == ["armada-idle"]
    assert drift["mode_mismatch"] == [{"profile": "armada-demo", "file": os.path.join(tree, "usr.bin.armada-demo"),
                                       "declared": "enforce", "loaded": "complain"}]
    assert [d["profile"] for d in drift["content"]] == ["/usr/bin/armada-other"]
    assert drift["loaded_without_file"] == ["armada-stray"]
    assert res["files"]["usr.bin.armada-demo"]["profiles"]["armada-demo"]["loaded_matches_file"] is True
    assert res["drifted"] is True
