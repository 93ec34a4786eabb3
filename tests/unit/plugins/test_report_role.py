"""The report role through real ``ansible-playbook`` runs (two local hosts over fixture logs), with a real webhook
receiver (http.server on 127.0.0.1) and a real SMTP server (aiosmtpd on 127.0.0.1) receiving the mail sent by
community.general.mail (installed by scripts/ensure-community-general.sh, from Galaxy or the PyPI ansible package).

What is checked comes from the fixture records (what the kernel would have logged) and from the promise of the
role: notify only when something is new, fail loudly when a notification fails, and move the positions on the
controller only after every notification succeeded.
"""
import email
import email.policy
import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from aiosmtpd.controller import Controller

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
TEST_COLLECTIONS = os.path.join(ROOT, "build", "test-collections")
HOSTILE = "/tmp/<script>alert(1)</script>{{ lookup('env','HOME') }}\"'"


def avc(serial, path, mode="DENIED", profile="/usr/bin/x", comm="x"):
    hexname = path.encode().hex().upper()  # the kernel logs names with special characters in hex
    return ('type=AVC msg=audit(1700000%03d.000:%d): apparmor="%s" operation="open" class="file" profile="%s" '
            'name=%s pid=%d comm="%s" requested_mask="r" denied_mask="r" fsuid=0 ouid=0\n'
            % (serial, serial, mode, profile, hexname, 800 + serial, comm))


class Webhook:
    """Records every POST; answers with ``status``."""

    def __init__(self):
        self.posts = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.posts.append({"headers": dict(self.headers), "body": json.loads(body)})
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Mailbox:
    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    def __init__(self):
        self.messages = []


@pytest.fixture(scope="module")
def collections():
    res = subprocess.run([os.path.join(ROOT, "scripts", "ensure-community-general.sh"), TEST_COLLECTIONS],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, "cannot install community.general for the mail test:\n%s" % res.stderr
    return os.path.join(ROOT, "build", "collections") + ":" + TEST_COLLECTIONS


@pytest.fixture
def servers():
    hook = Webhook()
    box = Mailbox()
    with socket.socket() as probe:  # a free port (aiosmtpd's readiness check cannot use port 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = Controller(box, hostname="127.0.0.1", port=port)
    smtp.start()
    yield hook, box, smtp
    hook.server.shutdown()
    if smtp._thread is not None:  # stopped by the test already when None
        smtp.stop()


def run(work, collections, extra, check=False):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCALHOST_WARNING="0", PWD=str(work))
    cmd = [PLAYBOOK, "-i", str(work / "hosts.yml"), "armada.apparmor.report", "-e", json.dumps(extra)]
    if check:
        cmd.append("--check")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(work), check=False)


def read_json(path):
    with open(str(path)) as fh:
        return json.load(fh)


def test_notify_once_fail_loudly_and_move_positions_only_after_success(tmp_path, collections, servers):
    hook, box, smtp = servers
    logs = {h: tmp_path / ("%s-audit.log" % h) for h in ("web1", "web2")}
    hosts = {"all": {"hosts": {h: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                                   "apparmor_report_sources": ["auditd:" + str(logs[h])]} for h in logs}}}
    (tmp_path / "hosts.yml").write_text(json.dumps(hosts))
    logs["web1"].write_text(avc(1, HOSTILE) + avc(2, HOSTILE) + avc(3, "/etc/allowed.conf", mode="ALLOWED"))
    logs["web2"].write_text(avc(4, HOSTILE))
    extra = {"apparmor_become": False, "apparmor_report_check_drift": False,
             "apparmor_report_state_dir": str(tmp_path / "state"),
             "apparmor_report_backup_dir": str(tmp_path / "bk"), "apparmor_programs": ["/usr/bin/x"],
             "apparmor_report_webhook_url": hook.url, "apparmor_report_webhook_headers": {"X-Token": "s3cret"},
             "apparmor_report_mail_to": ["sec@example.test"], "apparmor_report_mail_host": "127.0.0.1",
             "apparmor_report_mail_port": smtp.port, "apparmor_report_mail_secure": "never"}
    out = tmp_path / "apparmor-report"
    positions = out / "positions.json"

    # 1. the receiver answers 500: the play fails, the report is written, nothing else moves
    hook.status = 500
    res = run(tmp_path, collections, extra)
    assert res.returncode != 0, res.stdout[-3000:]
    assert "Send the webhook" in res.stdout and "500" in res.stdout
    assert len(hook.posts) == 1 and box.messages == []
    assert not positions.exists(), "a failed notification must not advance the positions"
    report = read_json(out / "report.json")
    assert report["summary"]["intrusions"] == 1 and report["summary"]["intrusion_records"] == 3
    assert report["summary"]["unanswered"] == 1

    # 2. the receiver works: webhook and mail, then the positions
    hook.status = 200
    res = run(tmp_path, collections, extra)
    assert res.returncode == 0, res.stdout[-3000:]
    body = hook.posts[-1]["body"]
    assert hook.posts[-1]["headers"].get("X-Token") == "s3cret"
    assert body["summary"]["intrusions"] == 1 and body["report"] == str(out / "index.html")
    assert body["intrusions"][0]["target"] == HOSTILE and body["intrusions"][0]["hosts"] == {"web1": 2, "web2": 1}
    assert len(box.messages) == 1
    msg = box.messages[0]
    assert "1 possible intrusion" in msg["Subject"] and msg["To"] == "sec@example.test"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert str(out / "index.html") in text and "possible intrusions:" in text
    first = read_json(positions)["positions"]
    assert sorted(first) == ["web1", "web2"]
    assert len(os.listdir(str(out / "history"))) >= 1

    # 3. nothing new: nothing sent (the positions are rewritten: same places, new issue time)
    res = run(tmp_path, collections, extra)
    assert res.returncode == 0, res.stdout[-3000:]
    assert read_json(out / "report.json")["summary"]["needs_attention"] is False
    assert len(hook.posts) == 2 and len(box.messages) == 1
    second = read_json(positions)["positions"]

    # 4. check mode with a new record: printed (only it), but nothing written, sent or advanced
    with logs["web2"].open("a") as fh:
        fh.write(avc(5, "/etc/shadow", comm="evil"))
    before = (out / "report.json").read_text()
    res = run(tmp_path, collections, extra, check=True)
    assert res.returncode == 0, res.stdout[-3000:]
    assert "/usr/bin/x file open /etc/shadow by evil on web2 x1" in res.stdout
    assert "1 possible intrusion(s)" in res.stdout
    assert (out / "report.json").read_text() == before
    assert len(hook.posts) == 2 and len(box.messages) == 1
    assert read_json(positions)["positions"] == second

    # 5. the mail server is down: the webhook is sent, the play fails at the mail, the positions stay
    smtp.stop()
    res = run(tmp_path, collections, extra)
    assert res.returncode != 0, res.stdout[-3000:]
    assert "Mail the summary" in res.stdout and "Connection refused" in res.stdout
    assert len(hook.posts) == 3 and hook.posts[-1]["body"]["intrusions"][0]["target"] == "/etc/shadow"
    assert read_json(positions)["positions"] == second
