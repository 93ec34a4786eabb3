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
                      "auditd": ["lab1", "lab3"], "kernlog": ["lab2"], "journald": []}
    assert inv["all"]["vars"]["ansible_ssh_pipelining"] is True
    assert inv["all"]["vars"]["ansible_host"] == "127.0.0.1"
    assert inv["all"]["vars"]["ansible_ssh_private_key_file"] == "/img/id_ed25519"
    assert {h: v["ansible_port"] for h, v in inv["all"]["hosts"].items()} == {"lab1": 40001, "lab2": 40002,
                                                                            "lab3": 40003}
    assert "Port 40002" in read(os.path.join(str(tmp_path), "ssh_config"))


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
