#!/usr/bin/env python3
"""check_ops.py - checks of ops/: the alert rules, the Grafana dashboard, and the metrics both query.

  check_ops.py rules RULES TESTS          promtool check + test rules; every alert has a case where
                                          it fires and one where it stays quiet
  check_ops.py dashboard DASH SCHEMA      the dashboard against SCHEMA (jsonschema), its layout, its
                                          PromQL (through promtool), the topics it must cover
  check_ops.py metrics SCRAPE RULES DASH  every herald_* metric the rules and the dashboard query is
                                          in SCRAPE (a running herald's /metrics), with the labels
                                          they match on

Exits 0 when everything holds, 1 with one line per problem on stderr otherwise.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

METRIC = re.compile(r"\b(herald_[A-Za-z0-9_]+)\b")
# a selector: metric{label="v", label=~"v"} (values may hold escaped quotes)
SELECTOR = re.compile(r"\b(herald_[A-Za-z0-9_]+)\s*\{((?:[^}\"]|\"(?:[^\"\\]|\\.)*\")*)\}")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
# labels Prometheus adds to every scraped series, and histogram buckets
TARGET_LABELS = {"instance", "job", "le"}
HIST_SUFFIXES = ("_bucket", "_sum", "_count")

# What the dashboard must show (issue 13): each topic needs a panel querying one of these.
DASHBOARD_TOPICS = {
    "delivery rate and outcomes": ["herald_notifications_total"],
    "Expo latency": ["herald_expo_request_seconds_bucket"],
    "Expo 429s": ["herald_expo_retries_total"],
    "Expo credential errors": ["herald_expo_credential_errors_total"],
    "consumer lag": ["herald_queue_consumer_lag"],
    "DLQ inflow": ["herald_queue_dlq_total"],
    "API rate and status": ["herald_http_requests_total"],
    "API latency": ["herald_http_request_duration_seconds_bucket"],
    "Redis health": ["herald_redis_up", "herald_redis_errors_total"],
    "tokens by state": ["herald_tokens"],
}

# Grafana's variables, replaced by values Prometheus accepts so promtool can parse the query.
GRAFANA_VARS = [("$__rate_interval", "5m"), ("$__interval", "1m"), ("$__range", "1h"),
                ("$instance", ".*")]

problems = []


def problem(msg):
    problems.append(msg)


def promtool():
    path = shutil.which("promtool")
    if path is None:
        sys.exit("check_ops: promtool not found (Debian package prometheus; scripts/deps installs it)")
    return path


def run(argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def alerts_of(rules):
    out = []
    for g in rules.get("groups", []):
        for r in g.get("rules", []):
            if "alert" in r:
                out.append(r)
    return out


def check_rules(rules_path, tests_path):
    rc, out = run([promtool(), "check", "rules", rules_path])
    if rc != 0:
        problem(f"promtool check rules {rules_path}:\n{out}")
    rc, out = run([promtool(), "test", "rules", tests_path])
    if rc != 0:
        problem(f"promtool test rules {tests_path}:\n{out}")
    with open(rules_path) as f:
        names = {r["alert"] for r in alerts_of(yaml.safe_load(f))}
    with open(tests_path) as f:
        tests = yaml.safe_load(f)
    fires, quiet = set(), set()
    for t in tests.get("tests", []):
        for case in t.get("alert_rule_test", []):
            name = case["alertname"]
            if name not in names:
                problem(f"{tests_path}: test \"{t.get('name')}\" names unknown alert {name}")
            (fires if case.get("exp_alerts") else quiet).add(name)
    for name in sorted(names):
        if name not in fires:
            problem(f"{tests_path}: no case where {name} fires")
        if name not in quiet:
            problem(f"{tests_path}: no case where {name} stays quiet")
    print(f"rules: {len(names)} alerts, each tested firing and quiet")


def dashboard_queries(dash):
    """(where, expr) for every PromQL query in the dashboard, rows' nested panels included."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((f"panel \"{p.get('title')}\" {t.get('refId')}", t["expr"]))
            walk(p.get("panels", []))

    walk(dash.get("panels", []))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", q or "")
            if m:
                out.append((f"variable {v.get('name')}", m.group(1)))
    return out


def all_panels(dash):
    def walk(panels):
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))

    return list(walk(dash.get("panels", [])))


def check_layout(dash):
    ids, owner, overlaps = set(), {}, set()
    for p in all_panels(dash):
        if p["id"] in ids:
            problem(f"dashboard: panel id {p['id']} used twice")
        ids.add(p["id"])
        g = p["gridPos"]
        if g["x"] + g["w"] > 24:
            problem(f"dashboard: panel \"{p['title']}\" is wider than the 24-column grid")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                other = owner.setdefault((x, y), p["title"])
                if other != p["title"]:
                    overlaps.add((other, p["title"]))
    for a, b in sorted(overlaps):
        problem(f"dashboard: panels \"{a}\" and \"{b}\" overlap")


def check_promql(queries):
    """Every query parses as PromQL: promtool checks them as recording rules."""
    rules = []
    for i, (_, expr) in enumerate(queries):
        for var, value in GRAFANA_VARS:
            expr = expr.replace(var, value)
        if "$" in expr:
            problem(f"dashboard: {queries[i][0]} uses an unknown variable: {queries[i][1]}")
            continue
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
        path = f.name
    try:
        rc, out = run([promtool(), "check", "rules", path])
        if rc != 0:
            problem(f"dashboard: a query is not valid PromQL:\n{out}")
    finally:
        os.unlink(path)


def check_dashboard(dash_path, schema_path):
    import jsonschema

    with open(dash_path) as f:
        dash = json.load(f)
    with open(schema_path) as f:
        schema = json.load(f)
    for err in sorted(jsonschema.Draft7Validator(schema).iter_errors(dash), key=str):
        where = "/".join(str(p) for p in err.absolute_path)
        problem(f"{dash_path}: {where}: {err.message}")
    if problems:
        return
    check_layout(dash)
    queries = dashboard_queries(dash)
    check_promql(queries)
    used = {m for _, e in queries for m in METRIC.findall(e)}
    for topic, metrics in DASHBOARD_TOPICS.items():
        if not used.intersection(metrics):
            problem(f"dashboard: nothing shows {topic} ({' or '.join(metrics)})")
    print(f"dashboard: {len(all_panels(dash))} panels, {len(queries)} queries parse, "
          f"{len(DASHBOARD_TOPICS)} topics covered")


def parse_scrape(text):
    """{family: type}, {family: set of label names seen in samples}."""
    types, labels = {}, {}
    sample = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+\S+")
    pair = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=\"(?:[^\"\\]|\\.)*\"")
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            types[name] = kind.strip()
            labels.setdefault(name, None)
        elif line and not line.startswith("#"):
            m = sample.match(line)
            if not m:
                problem(f"scrape: unparsable line: {line}")
                continue
            name = m.group(1)
            fam = name
            for suffix in HIST_SUFFIXES:
                base = name[: -len(suffix)]
                if name.endswith(suffix) and types.get(base) == "histogram":
                    fam = base
            if fam not in types:
                problem(f"scrape: sample {name} before its # TYPE line")
                continue
            names = set(pair.findall(m.group(2) or ""))
            labels[fam] = (labels[fam] or set()) | names
    return types, labels


def family_of(name, types):
    """The family a queried series name belongs to, or None when /metrics has no such series."""
    if types.get(name) in ("counter", "gauge"):
        return name
    for suffix in HIST_SUFFIXES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and types.get(base) == "histogram":
            return base
    return None


def rule_queries(rules_path):
    with open(rules_path) as f:
        rules = yaml.safe_load(f)
    out = []
    for g in rules.get("groups", []):
        for r in g.get("rules", []):
            out.append((f"alert {r.get('alert') or r.get('record')}", r["expr"]))
    return out


def check_metrics(scrape_path, rules_path, dash_path):
    with open(scrape_path) as f:
        types, labels = parse_scrape(f.read())
    with open(dash_path) as f:
        queries = rule_queries(rules_path) + [
            (f"dashboard {w}", e) for w, e in dashboard_queries(json.load(f))]
    checked = set()
    unchecked_labels = set()
    for where, expr in queries:
        fams = []
        for name in METRIC.findall(expr):
            fam = family_of(name, types)
            if fam is None:
                hint = " (a histogram: query _bucket, _sum or _count)" if types.get(name) else ""
                problem(f"{where}: {name} is not in herald's /metrics{hint}")
                continue
            fams.append(fam)
            checked.add(name)
        for m in SELECTOR.finditer(expr):
            fam = family_of(m.group(1), types)
            if fam is None:
                continue
            for label in MATCHER.findall(m.group(2)):
                if label in TARGET_LABELS:
                    continue
                if labels[fam] is None:
                    unchecked_labels.add(fam)
                elif label not in labels[fam]:
                    problem(f"{where}: {m.group(1)} has no label {label} "
                            f"(it has {', '.join(sorted(labels[fam])) or 'none'})")
        known = [labels[f] for f in fams if labels[f] is not None]
        for group in GROUPING.findall(expr):
            for label in (x.strip() for x in group.split(",")):
                if not label or label in TARGET_LABELS:
                    continue
                if len(known) < len(fams):
                    unchecked_labels.update(f for f in fams if labels[f] is None)
                elif not any(label in k for k in known):
                    problem(f"{where}: no metric in the query has the label {label}: {expr}")
    print(f"metrics: {len(checked)} queried series names exist in /metrics "
          f"({len(types)} families scraped)")
    if unchecked_labels:
        print("metrics: labels not checked (no samples yet): " + ", ".join(sorted(unchecked_labels)))


def main(argv):
    if len(argv) == 4 and argv[1] == "rules":
        check_rules(argv[2], argv[3])
    elif len(argv) == 4 and argv[1] == "dashboard":
        check_dashboard(argv[2], argv[3])
    elif len(argv) == 5 and argv[1] == "metrics":
        check_metrics(argv[2], argv[3], argv[4])
    else:
        sys.exit(__doc__)
    for p in problems:
        print(f"check_ops: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
