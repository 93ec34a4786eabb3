"""The lab tool's own logic, without booting anything: inventory groups, the image cache key, and that it
never signals a process that is not one of its qemu guests."""
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tests", "lab", "lab")


def load_tool(here=None, run_dir=None):
    loader = importlib.machinery.SourceFileLoader("armada_lab_tool", TOOL)
    spec = importlib.util.spec_from_loader("armada_lab_tool", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    if here:
        mod.HERE = here
    if run_dir:
        mod.RUN = run_dir
    return mod


def read(path):
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def test_inventory_groups_and_connection(tmp_path):
    lab = load_tool(run_dir=str(tmp_path))
    hosts = [{"name": "lab%d" % i, "port": 40000 + i, "flavour": lab.flavour(i), "console": "/x/lab%d.log" % i}
             for i in (1, 2, 3)]
    inv = yaml.safe_load(read(lab.write_inventory("/img", hosts)))
    groups = {g: sorted(v.get("hosts") or {}) for g, v in inv["all"]["children"].items()}
    assert groups == {"lab": ["lab1", "lab2", "lab3"], "canary": ["lab1"], "rest": ["lab2", "lab3"],
                      "auditd": ["lab1", "lab3"], "kernlog": ["lab2"], "journald": [], "trixie": []}
    assert inv["all"]["vars"]["ansible_ssh_pipelining"] is True
    assert inv["all"]["vars"]["ansible_host"] == "127.0.0.1"
    assert inv["all"]["vars"]["ansible_ssh_private_key_file"] == "/img/id_ed25519"
    assert {h: v["ansible_port"] for h, v in inv["all"]["hosts"].items()} == {"lab1": 40001, "lab2": 40002,
                                                                            "lab3": 40003}
    assert "Port 40002" in read(os.path.join(str(tmp_path), "ssh_config"))


def test_hosts_without_systemd_roll_out_without_the_dead_mans_switch(tmp_path):
    """The enforce role's switch needs systemd: only the systemd-booted flavour keeps it on."""
    lab = load_tool(run_dir=str(tmp_path))
    hosts = [{"name": "lab%d" % i, "port": 40000 + i, "flavour": fl, "console": "c"}
             for i, fl in ((1, "auditd"), (2, "kernlog"), (3, "journald"), (4, "trixie"))]
    inv = yaml.safe_load(read(lab.write_inventory("/img", hosts)))
    assert {h: v.get("apparmor_enforce_deadman", "default") for h, v in inv["all"]["hosts"].items()} == {
        "lab1": False, "lab2": False, "lab3": "default", "lab4": False}


def test_trixie_host_has_its_own_key_and_only_its_own_group(tmp_path):
    lab = load_tool(run_dir=str(tmp_path))
    hosts = [{"name": "lab%d" % i, "port": 40000 + i, "flavour": fl, "console": "c", "image": img}
             for i, fl, img in ((1, "auditd", "/img"), (2, "trixie", "/trixie/img"), (3, "kernlog", "/img"))]
    inv = yaml.safe_load(read(lab.write_inventory("/img", hosts)))
    groups = {g: sorted(v.get("hosts") or {}) for g, v in inv["all"]["children"].items()}
    # general tests and playbooks use lab/canary/rest: the Debian 13 host is in none of them
    assert groups == {"lab": ["lab1", "lab3"], "canary": ["lab1"], "rest": ["lab3"], "auditd": ["lab1"],
                      "kernlog": ["lab3"], "journald": [], "trixie": ["lab2"]}
    assert inv["all"]["hosts"]["lab2"]["ansible_ssh_private_key_file"] == "/trixie/img/id_ed25519"
    assert "ansible_ssh_private_key_file" not in inv["all"]["hosts"]["lab1"]
    assert "Port 40002\n  User armada\n  IdentityFile /trixie/img/id_ed25519" in read(str(tmp_path / "ssh_config"))


def test_suites_have_their_own_key_and_cache_dir(tmp_path):
    lab = load_tool()
    lab.BASE_CACHE = str(tmp_path)
    lab.use_suite("bookworm")
    book_key, book_dir = lab.image_key(), lab.image_dir()
    lab.use_suite("trixie")
    assert lab.image_key() != book_key and lab.SUITES["bookworm"][0] == lab.PACKAGES
    assert lab.image_dir() == str(tmp_path / "trixie" / ("img-" + lab.image_key()))
    assert "virtio_net" in lab.MODULES and "virtio" not in lab.MODULES  # built into the 6.12 kernel
    assert lab.apt_sources().startswith("deb ") and lab.apt_sources().endswith(" trixie main")
    lab.use_suite("bookworm")  # and back: the same key and directory as before
    assert (lab.image_key(), lab.image_dir()) == (book_key, book_dir)
    assert os.path.dirname(book_dir) == str(tmp_path)
    with pytest.raises(lab.LabError, match="unknown suite"):
        lab.use_suite("sid")
    assert [lab.FLAVOUR_SUITE.get(f, "bookworm") for f in lab.FLAVOURS] == ["bookworm"] * 3 + ["trixie"]


def test_flavours_default_alternate_and_chosen_ones_cycle():
    lab = load_tool()
    assert [lab.flavour(i) for i in (1, 2, 3, 4)] == ["auditd", "kernlog", "auditd", "kernlog"]
    chosen = ["auditd", "kernlog", "journald"]
    assert [lab.flavour(i, chosen) for i in (1, 2, 3, 4)] == ["auditd", "kernlog", "journald", "auditd"]


def test_unknown_flavour_is_refused_before_anything_starts(tmp_path):
    env = dict(os.environ, ARMADA_LAB_RUN=str(tmp_path))
    res = subprocess.run([TOOL, "up", "1", "--flavours", "auditd,docker"], capture_output=True, text=True,
                         env=env, check=False)
    assert res.returncode == 1
    assert "unknown flavour" in res.stderr
    assert not os.path.exists(os.path.join(str(tmp_path), "state.json"))


def test_single_host_lab_has_empty_groups_not_missing_ones(tmp_path):
    lab = load_tool(run_dir=str(tmp_path))
    inv = yaml.safe_load(read(lab.write_inventory("/img", [
        {"name": "lab1", "port": 1, "flavour": "auditd", "console": "c"}])))
    assert inv["all"]["children"]["rest"]["hosts"] == {}
    assert inv["all"]["children"]["kernlog"]["hosts"] == {}


def test_image_key_follows_the_recipe_only(tmp_path):
    copy = str(tmp_path / "lab")
    shutil.copytree(os.path.dirname(TOOL), copy)
    lab = load_tool(here=copy)
    before = lab.image_key()
    assert lab.image_key() == before, "the key is deterministic"
    with open(os.path.join(copy, "workload", "workload.conf"), "a", encoding="utf-8") as fh:
        fh.write("# changed\n")
    assert lab.image_key() != before, "a changed recipe file must rebuild the image"


def test_never_signals_a_process_that_is_not_its_qemu(tmp_path):
    lab = load_tool(run_dir=str(tmp_path))
    # a process whose command line even mentions the run directory, but is no qemu
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(tmp_path) + "/lab1.pid"])
    try:
        assert not lab.is_our_qemu(proc.pid)
        lab.stop_pids([proc.pid], grace=0.5)
        assert proc.poll() is None, "stop_pids signalled a process that is not a lab qemu"
        assert proc.pid not in lab.our_pids()
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("argv, code", [([], 2), (["bogus"], 2), (["--help"], 0)])
def test_cli_usage(argv, code):
    res = subprocess.run([TOOL, *argv], capture_output=True, text=True, check=False)
    assert res.returncode == code
    assert "tests/lab/lab up N" in res.stdout + res.stderr
