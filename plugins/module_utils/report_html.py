"""The fleet report as one self-contained HTML page (docs/report.md).

Why this shape: the page is opened from a mail link or a file share, often from file://, by people
looking at possible intrusions - so it loads nothing (inline CSS and JS, no fonts, no images), and its
Content-Security-Policy is ``default-src 'none'`` with the sha256 of the one inline style and the one
inline script, so even a name that slipped through escaping could not run code. Every value comes from
host data and goes through one escaper (``esc``); the script only hides, shows and reorders rows, reading
``data-*`` attributes and never writing HTML.

Controller-side, standard library only.
"""
import base64
import hashlib
import html
from typing import Any, Iterable, List, Mapping, Sequence

from ansible_collections.armada.apparmor.plugins.module_utils.report import one_line

# Separator of several values in one data-* attribute (hosts): a newline, which no value can contain once
# one_line() has made its control characters visible.
SEP = "\n"

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#1b1b1b;background:#fff}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.4em 0}
th,td{border:1px solid #ccc;padding:.2em .5em;vertical-align:top;text-align:left}
th{background:#f0f0f0;cursor:pointer;user-select:none}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
.cards{display:flex;flex-wrap:wrap;gap:.6em}
.card{border:1px solid #ccc;border-radius:6px;padding:.4em .8em;min-width:8em}
.card .n{font-size:1.6em;font-weight:bold;display:block}
.card.alert{border-color:#b00020;background:#fde7ea}
.mode-enforce{background:#d7f5dd}.mode-complain{background:#fff1c2}.mode-kill{background:#e8dcff}
.mode-unconfined,.mode-absent{background:#eee;color:#555}.mode-drift{outline:2px solid #b00020}
.unverified{background:#fff6e0}
pre{margin:0;white-space:pre-wrap;font-size:12px}
code,.mono{font-family:ui-monospace,monospace;white-space:pre-wrap;word-break:break-all}
.filters{margin:.8em 0;display:flex;gap:1em;flex-wrap:wrap;align-items:center}
.muted{color:#666}.hidden{display:none}
details{margin:.2em 0}
"""

SCRIPT = """
(function () {
  'use strict';
  var SEP = '\\n';
  function sel(id) { return document.getElementById(id); }
  function values(row, key) {
    var v = row.getAttribute('data-' + key);
    return v === null ? null : v.split(SEP);
  }
  function apply() {
    var want = {host: sel('f-host').value, profile: sel('f-profile').value, kind: sel('f-kind').value};
    var tables = document.querySelectorAll('table.filterable');
    for (var t = 0; t < tables.length; t++) {
      var rows = tables[t].tBodies[0].rows;
      var shown = 0;
      for (var i = 0; i < rows.length; i++) {
        var ok = true;
        for (var key in want) {
          if (!want[key]) { continue; }
          var have = values(rows[i], key);
          if (have !== null && have.indexOf(want[key]) < 0) { ok = false; }
        }
        rows[i].classList.toggle('hidden', !ok);
        if (ok) { shown++; }
      }
      var out = sel(tables[t].id + '-shown');
      if (out) { out.textContent = String(shown); }
    }
  }
  function sortBy(th) {
    var table = th.closest('table');
    var body = table.tBodies[0];
    var idx = Array.prototype.indexOf.call(th.parentNode.children, th);
    var desc = th.classList.contains('sorted-asc');
    var heads = th.parentNode.children;
    for (var h = 0; h < heads.length; h++) { heads[h].classList.remove('sorted-asc', 'sorted-desc'); }
    th.classList.add(desc ? 'sorted-desc' : 'sorted-asc');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[idx].getAttribute('data-sort') || a.cells[idx].textContent;
      var y = b.cells[idx].getAttribute('data-sort') || b.cells[idx].textContent;
      var nx = Number(x), ny = Number(y);
      var c = (x !== '' && y !== '' && !isNaN(nx) && !isNaN(ny)) ? nx - ny : (x < y ? -1 : (x > y ? 1 : 0));
      return desc ? -c : c;
    });
    for (var r = 0; r < rows.length; r++) { body.appendChild(rows[r]); }
  }
  document.addEventListener('DOMContentLoaded', function () {
    ['f-host', 'f-profile', 'f-kind'].forEach(function (id) { sel(id).addEventListener('change', apply); });
    var heads = document.querySelectorAll('table.sortable thead th');
    for (var i = 0; i < heads.length; i++) {
      heads[i].addEventListener('click', function (ev) { sortBy(ev.currentTarget); });
    }
    apply();
  });
})();
"""


def esc(value: Any) -> str:
    """The one escaper: any value as HTML text (quotes too, for attributes); control characters visible."""
    return html.escape(one_line(value if isinstance(value, str) else str(value)), quote=True)


def _sha256(source: str) -> str:
    return "'sha256-%s'" % base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii")


def csp() -> str:
    """The page's policy: nothing but its own inline style and script, by hash."""
    return ("default-src 'none'; style-src %s; script-src %s; base-uri 'none'; form-action 'none'"
            % (_sha256(STYLE), _sha256(SCRIPT)))


def _attrs(**data: Iterable[str]) -> str:
    return "".join(' data-%s="%s"' % (k, SEP.join(esc(v) for v in vals)) for k, vals in data.items())


def _mode_class(mode: str, drift: Sequence[str]) -> str:
    base = mode.split(" ")[0]
    cls = "mode-" + (base if base in ("enforce", "complain", "kill", "unconfined") else "absent")
    return cls + (" mode-drift" if drift else "")


def _table(table_id: str, heads: List[str], rows: List[str], filterable: bool = True) -> str:
    cls = "sortable filterable" if filterable else "sortable"
    return ('<table id="%s" class="%s"><thead><tr>%s</tr></thead><tbody>%s</tbody></table>'
            % (table_id, cls, "".join("<th>%s</th>" % esc(h) for h in heads), "".join(rows)))


def _cards(s: Mapping) -> str:
    cards = [("hosts", "hosts", False), ("hosts_unreachable", "unreachable", True),
             ("profiles", "profiles", False), ("drifted", "drifted rows", True),
             ("intrusions", "possible intrusions", True), ("intrusion_records", "intrusion records", True),
             ("unverified", "unverified", True), ("unanswered", "unanswered accesses", True)]
    out = []
    for key, label, alert in cards:
        n = int(s.get(key) or 0)
        out.append('<div class="card%s"><span class="n" id="count-%s">%d</span>%s</div>'
                   % (" alert" if alert and n else "", esc(key.replace("_", "-")), n, esc(label)))
    return '<div class="cards">%s</div>' % "".join(out)


def _matrix(report: Mapping) -> str:
    names = list(report.get("profiles") or [])
    rows = []
    for h in report.get("hosts") or []:
        cells = {r["profile"]: r for r in h["profiles"]}
        tds = []
        for n in names:
            r = cells.get(n)
            if r is None:
                tds.append('<td class="mode-absent muted">-</td>')
                continue
            title = "file: %s; state: %s; drift: %s" % (r["mode_file"], r["state"], ",".join(r["drift"]) or "none")
            tds.append('<td class="%s" title="%s">%s%s</td>' % (
                _mode_class(r["mode_kernel"], r["drift"]), esc(title), esc(r["mode_kernel"]),
                " (drift)" if r["drift"] else ""))
        if not h["reachable"]:
            tds = ['<td colspan="%d" class="mode-absent">unreachable: %s</td>' % (max(1, len(names)), esc(h["error"]))]
        rows.append("<tr%s><th>%s</th>%s</tr>" % (_attrs(host=[h["host"]]), esc(h["host"]), "".join(tds)))
    heads = "".join("<th>%s</th>" % esc(n) for n in names)
    return ('<table id="matrix" class="filterable"><thead><tr><th>host</th>%s</tr></thead><tbody>%s</tbody></table>'
            % (heads, "".join(rows)))


def _status_rows(report: Mapping) -> List[str]:
    rows = []
    for h in report.get("hosts") or []:
        for r in h["profiles"]:
            p = r["processes"]
            procs = "-" if p is None else "%d confined, %d unconfined" % (p["confined"], p["unconfined"])
            rows.append("<tr%s>%s</tr>" % (_attrs(host=[h["host"]], profile=[r["profile"]]), "".join(
                '<td class="%s">%s</td>' % (cls, esc(v)) for cls, v in (
                    ("", h["host"]), ("mono", r["profile"]), (_mode_class(r["mode_kernel"], []), r["mode_kernel"]),
                    (_mode_class(r["mode_file"], []), r["mode_file"]), ("", ",".join(r["drift"]) or "-"),
                    ("", r["state"]), ("", r["pending"]), ("", procs), ("", r["last_update"] or "-"),
                    ("", "%d (latest %s)" % (h["backups"]["count"], h["backups"]["latest_time"] or "-")
                     if h["backups"]["count"] else "none")))))
    return rows


def _group_rows(groups: List[Mapping], cls: str = "") -> List[str]:
    rows = []
    for g in groups:
        snippet = ('<details><summary>answer</summary><pre>%s</pre><pre class="muted">%s</pre></details>'
                   % (esc_block(g.get("answer", "")), esc_block(g.get("rule", ""))) if g.get("answer")
                   else '<span class="muted">%s</span>' % esc(g.get("rule", "")))
        hosts = sorted(g["hosts"])
        cells = [("mono", esc(g["profile"])), ("", esc(g["kind"])), ("", esc(",".join(g["operations"]))),
                 ("mono", esc(g["target"])), ("", esc(g["mask"])), ("mono", esc(",".join(g["comms"]))),
                 ("", esc(", ".join("%s (%d)" % (h, g["hosts"][h]) for h in hosts))),
                 ("", esc(g["count"])), ("", esc(g["first_seen"])), ("", esc(g["last_seen"])), ("", snippet)]
        rows.append('<tr class="%s"%s>%s</tr>' % (cls, _attrs(host=hosts, profile=[g["profile"]], kind=[g["kind"]]),
                                                  "".join('<td class="%s">%s</td>' % c for c in cells)))
    return rows


def esc_block(value: Any) -> str:
    """Multi-line text (an answer snippet) escaped: newlines kept, nothing else interpreted."""
    return "\n".join(esc(line) for line in str(value).split("\n"))


GROUP_HEADS = ["profile", "kind", "operation", "path or peer", "mask", "comm", "hosts", "count", "first seen",
               "last seen", "answer that would allow it"]


def _options(fid: str, label: str, values: Iterable[str]) -> str:
    opts = "".join('<option value="%s">%s</option>' % (esc(v), esc(v)) for v in sorted(set(values)))
    return '<label>%s <select id="%s"><option value="">(all)</option>%s</select></label>' % (esc(label), fid, opts)


def render(report: Mapping) -> str:
    """The whole page."""
    s = report.get("summary") or {}
    hosts = [h["host"] for h in report.get("hosts") or []]
    groups = list(report.get("intrusions") or []) + list(report.get("unverified") or [])
    unanswered = [g for p in report.get("unanswered") or [] for g in p["items"]]
    kinds = [g["kind"] for g in groups + unanswered]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="%s">' % esc(csp()),
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>AppArmor fleet report %s</title>" % esc(report.get("id", "")),
        "<style>%s</style>" % STYLE,
        "<script>%s</script>" % SCRIPT,
        "</head><body>",
        "<h1>AppArmor fleet report</h1>",
        '<p class="muted">report <span id="report-id">%s</span>, generated %s (UTC). %s</p>' % (
            esc(report.get("id", "")), esc(report.get("generated", "")),
            "Status only (armada.apparmor.status): the logs were not read - run armada.apparmor.report for "
            "intrusions." if report.get("scope") == "status" else
            "New since the previous report of each host%s." % (
                "; first report of %d host(s): everything in their current logs" % int(s["hosts_first_report"])
                if s.get("hosts_first_report") else "")),
        _cards(s),
        '<div class="filters">%s%s%s</div>' % (_options("f-host", "host", hosts),
                                               _options("f-profile", "profile", list(report.get("profiles") or [])
                                                        + [g["profile"] for g in groups + unanswered]),
                                               _options("f-kind", "kind", kinds)),
        "<h2>Modes: host x profile</h2>",
        '<p class="muted">green enforce, yellow complain, purple kill, grey unconfined or not loaded, '
        "red outline drift (the kernel differs from the file).</p>",
        _matrix(report),
        '<h2>Possible intrusions (<span id="intrusions-shown">%d</span> of %d shown)</h2>' % (
            len(report.get("intrusions") or []), len(report.get("intrusions") or [])),
        '<p class="muted">Accesses DENIED by a profile since the last report. If one is normal behaviour, add its '
        "answer to inventory (<code>apparmor_answers</code>) and run profile_fleet.</p>",
        _table("intrusions", GROUP_HEADS, _group_rows(report.get("intrusions") or [])),
        '<h2>Unverified (<span id="unverified-shown">%d</span> of %d shown)</h2>' % (
            len(report.get("unverified") or []), len(report.get("unverified") or [])),
        '<p class="muted">DENIED records read only from sources a local user can write to (syslog files, journal '
        "entries without a kernel origin): they may be forged. Check the host before acting on them.</p>",
        _table("unverified", GROUP_HEADS, _group_rows(report.get("unverified") or [], "unverified")),
        "<h2>Complain-mode accesses not yet answered</h2>",
        _table("unanswered", GROUP_HEADS, _group_rows(unanswered)),
        "<h2>Status per host and profile</h2>",
        _table("status", ["host", "profile", "kernel mode", "file mode", "drift", "state", "pending",
                          "processes", "last update", "backups"], _status_rows(report)),
        "<h2>Hosts</h2>",
        _table("hosts", ["host", "reachable", "AppArmor", "records read", "sources", "first report"], [
            "<tr%s>%s</tr>" % (_attrs(host=[h["host"]]), "".join("<td>%s</td>" % esc(v) for v in (
                h["host"], "yes" if h["reachable"] else "no: " + h["error"],
                "enabled" if h["apparmor"]["enabled"] else "absent: " + h["apparmor"]["reason"],
                h["read"].get("records", 0), ", ".join(h["read"].get("sources", [])) +
                (" (all forgeable)" if h["read"].get("only_forgeable") else ""),
                "yes" if h["first_report"] else "no")))
            for h in report.get("hosts") or []]),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _page(title: str, body: List[str]) -> str:
    """A page with the report's style, policy and script (the filters are absent: the script ignores that)."""
    return "\n".join(["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                      '<meta http-equiv="Content-Security-Policy" content="%s">' % esc(csp()),
                      "<title>%s</title>" % esc(title), "<style>%s</style>" % STYLE, "<script>%s</script>" % SCRIPT,
                      "</head><body>", "<h1>%s</h1>" % esc(title)] + body + ["</body></html>"]) + "\n"


def enforce_summary(reports: Sequence[Mapping], unknown: Sequence[str] = ()) -> str:
    """The fleet summary of an enforce rollout: one row per host and profile, the outcome and its reason."""
    rows = []
    counts: dict = {}
    for host in unknown:
        counts["unknown"] = counts.get("unknown", 0) + 1
        rows.append("<tr>%s</tr>" % "".join("<td>%s</td>" % esc(v) for v in (
            host, "unknown", "never reported back (unreachable or failed mid-way): check it", "", "", "")))
    for r in reports:
        status = str(r.get("status", ""))
        counts[status] = counts.get(status, 0) + 1
        reason = (r.get("outcome") or {}).get("reason", "") if isinstance(r.get("outcome"), Mapping) else ""
        profiles = [p for p in r.get("profiles") or [] if isinstance(p, Mapping)] or [{}]
        for p in profiles:
            rows.append('<tr class="%s">%s</tr>' % ("mode-enforce" if status == "enforced" else
                                                    "mode-complain" if status == "rolled back" else "",
                                                    "".join("<td>%s</td>" % esc(v) for v in (
                                                        r.get("host", ""), status, reason, p.get("profile", ""),
                                                        p.get("action", ""), p.get("reason", "")))))
    cards = "".join('<div class="card"><span class="n">%d</span>%s</div>' % (n, esc(k))
                    for k, n in sorted(counts.items()))
    return _page("AppArmor enforce rollout", [
        '<div class="cards">%s</div>' % cards,
        _table("rollout", ["host", "status", "reason", "profile", "action", "why"], rows, filterable=False)])
