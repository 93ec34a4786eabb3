"""AWX / Automation Platform: the collection in an execution environment, with the real ansible-builder.

``ansible-builder create`` turns docs/awx/execution-environment.yml and the built tarball into a build
context; ``ansible-builder introspect`` - the step the image build runs on the installed collections - reads
meta/execution-environment.yml from the installed tarball and finds no requirement (the controller side needs
nothing beyond ansible-core), so the repository's development requirements never leak into an image.
"""
import os
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.path.dirname(sys.executable)
BUILDER = os.path.join(BIN, "ansible-builder")
DEFINITION = os.path.join(ROOT, "docs", "awx", "execution-environment.yml")


def run(cmd, env=None, cwd=None):
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, "%s failed (%d):\n%s\n%s" % (cmd, proc.returncode, proc.stdout, proc.stderr)
    return proc


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ee")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"),
               ANSIBLE_COLLECTIONS_PATH=str(tmp / "collections"))
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(tmp), ROOT], env)
    (path,) = [tmp / p for p in os.listdir(str(tmp)) if p.endswith(".tar.gz")]
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline", "-p", str(tmp / "collections"),
         str(path)], env)
    return tmp, path


def test_builder_create_makes_a_build_context(tarball):
    tmp, path = tarball
    work = tmp / "definition"
    work.mkdir()
    shutil.copy(DEFINITION, str(work / "execution-environment.yml"))
    shutil.copy(str(path), str(work / path.name))  # the definition takes the tarball from beside it
    ctx = tmp / "context"
    run([BUILDER, "create", "-f", "execution-environment.yml", "-c", str(ctx), "--output-filename", "Containerfile"],
        cwd=str(work))
    containerfile = (ctx / "Containerfile").read_text()
    assert "COPY _build/collections/ /build/collections/" in containerfile
    assert "ansible-galaxy collection install" in containerfile and "introspect" in containerfile
    reqs = yaml.safe_load((ctx / "_build" / "requirements.yml").read_text())
    assert reqs == {"collections": [{"name": "/build/collections/%s" % path.name, "type": "file"}]}
    assert (ctx / "_build" / "collections" / path.name).read_bytes() == path.read_bytes()


def test_introspect_reads_the_collection_metadata(tarball):
    tmp, _ = tarball
    installed = tmp / "collections" / "ansible_collections" / "armada" / "apparmor"
    meta = yaml.safe_load((installed / "meta" / "execution-environment.yml").read_text())
    assert meta["dependencies"] == {"python": "meta/ee-requirements.txt", "system": "meta/ee-bindep.txt"}
    proc = run([BUILDER, "introspect", str(tmp / "collections"), "--sanitize"])
    data = yaml.safe_load(proc.stdout.split("# Dependency data", 1)[-1].split("\n", 1)[1])
    assert data.get("python", []) == [] and data.get("system", []) == [], proc.stdout
    # the development requirements stay out of the tarball (ansible-builder would install a root requirements.txt)
    for name in ("requirements.txt", "requirements-py38.txt", "bindep.txt"):
        assert not (installed / name).exists(), name
