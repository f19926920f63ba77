#!/usr/bin/python3
"""Checks docs/openapi.yaml and the API answers recorded by tests/api/test_api.c against it.

  validate_openapi.py --spec docs/openapi.yaml --lint
      The document parses and is structurally OpenAPI 3.1: openapi 3.1.x, info, paths with
      operations whose responses have descriptions, components, every local $ref resolves, every
      schema is a valid JSON Schema (Draft 2020-12, the dialect of OpenAPI 3.1).
  validate_openapi.py --spec docs/openapi.yaml --records FILE
      FILE holds one JSON object per line: {method, path, status, headers: [[name, value]...],
      body} (test_api.c writes it when HERALD_TEST_API_RECORD is set). Each answer must be
      described: the path (or the document's x-herald-unknown-path response for any other path),
      the method, the status; every required header of that response present, every described
      header valid against its schema, no API header that the document defines elsewhere but not
      for this response; the Content-Type one of the response's media types (no body when it has
      none) and the body valid against its schema.
  validate_openapi.py --spec docs/openapi.yaml --self-test
      Shows that the checks above can fail: synthetic answers with an undocumented status, a
      missing header, a bad body... must each be refused, good ones accepted, and broken copies
      of the document must fail the lint.

Needs python3-yaml and python3-jsonschema (Debian; scripts/deps installs them). Exit status 0 when
everything passed, 1 otherwise.
"""
import argparse
import copy
import json
import re
import sys

try:
    import yaml
    import jsonschema
except ImportError as e:  # pragma: no cover - a setup problem, reported plainly
    sys.stderr.write("validate_openapi.py: %s (install python3-yaml python3-jsonschema; "
                     "scripts/deps does)\n" % e)
    sys.exit(1)

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
UNKNOWN_PATH_KEY = "x-herald-unknown-path"


# ---- JSON pointers and references -------------------------------------------------------------

def pointer_get(doc, pointer):
    """The value at a local reference '#/a/b' (RFC 6901 escapes), or KeyError."""
    if not pointer.startswith("#"):
        raise KeyError("not a local reference: %s" % pointer)
    node = doc
    frag = pointer[1:]
    if frag == "":
        return node
    if not frag.startswith("/"):
        raise KeyError("bad pointer %s" % pointer)
    for part in frag[1:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError("%s: no %r" % (pointer, part))
    return node


def pointer_join(pointer, *parts):
    out = pointer
    for p in parts:
        out += "/" + str(p).replace("~", "~0").replace("/", "~1")
    return out


def deref(doc, obj, pointer):
    """Follows $ref (OpenAPI reference objects) to the object; returns (object, its pointer)."""
    seen = set()
    while isinstance(obj, dict) and "$ref" in obj:
        ref = obj["$ref"]
        if ref in seen:
            raise KeyError("reference loop at %s" % ref)
        seen.add(ref)
        obj, pointer = pointer_get(doc, ref), ref
    return obj, pointer


def schema_validator(doc, pointer):
    """A Draft 2020-12 validator for the schema at pointer, resolving $ref within the document:
    the root schema is the whole document plus a $ref to the pointer (the other members of the
    document are not schema keywords and are ignored)."""
    root = dict(doc)
    root["$ref"] = pointer
    return jsonschema.Draft202012Validator(root)


def schema_errors(doc, pointer, instance):
    v = schema_validator(doc, pointer)
    out = []
    for e in sorted(v.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        out.append("%s: %s" % (where, e.message))
    return out


# ---- lint ------------------------------------------------------------------------------------

def walk(node, pointer="#"):
    yield node, pointer
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, pointer_join(pointer, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, pointer_join(pointer, i))


def lint(doc):
    """Problems with the document as a list of sentences (empty when it is fine)."""
    errs = []
    if not isinstance(doc, dict):
        return ["the document is not a mapping"]
    ver = doc.get("openapi")
    if not isinstance(ver, str) or not re.fullmatch(r"3\.1\.\d+", ver):
        errs.append("openapi must be 3.1.x, is %r" % (ver,))
    info = doc.get("info")
    if not isinstance(info, dict) or not isinstance(info.get("title"), str) or \
            not isinstance(info.get("version"), str):
        errs.append("info.title and info.version are required strings")
    paths = doc.get("paths")
    comps = doc.get("components")
    if not isinstance(paths, dict) or not paths:
        errs.append("paths must be a non-empty mapping")
        paths = {}
    if not isinstance(comps, dict):
        errs.append("components must be a mapping")
        comps = {}
    # Every local reference resolves; no other kind is used.
    for node, ptr in walk(doc):
        if isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                errs.append("%s: only local references are used, found %r" % (ptr, ref))
                continue
            try:
                pointer_get(doc, ref)
            except (KeyError, ValueError, IndexError) as e:
                errs.append("%s: unresolved $ref %s (%s)" % (ptr, ref, e))
    if errs:
        return errs
    schemes = comps.get("securitySchemes", {})
    for req in doc.get("security", []):
        for name in req:
            if name not in schemes:
                errs.append("security: no securityScheme %r" % name)
    op_ids = set()
    for path, item in paths.items():
        pptr = pointer_join("#/paths", path)
        if not path.startswith("/"):
            errs.append("%s: a path starts with /" % pptr)
        if not isinstance(item, dict):
            errs.append("%s: a path item is a mapping" % pptr)
            continue
        ops = [m for m in item if m in METHODS]
        if not ops:
            errs.append("%s: no operation" % pptr)
        for m in ops:
            op = item[m]
            optr = pointer_join(pptr, m)
            oid = op.get("operationId")
            if oid in op_ids:
                errs.append("%s: duplicate operationId %s" % (optr, oid))
            op_ids.add(oid)
            for i, prm in enumerate(item.get("parameters", []) + op.get("parameters", [])):
                prm, _ = deref(doc, prm, optr)
                if not isinstance(prm.get("name"), str) or \
                        prm.get("in") not in ("query", "header", "path", "cookie"):
                    errs.append("%s: parameter %d needs name and in" % (optr, i))
                if "schema" not in prm and "content" not in prm:
                    errs.append("%s: parameter %s needs a schema" % (optr, prm.get("name")))
            resps = op.get("responses")
            if not isinstance(resps, dict) or not resps:
                errs.append("%s: responses must be a non-empty mapping" % optr)
                continue
            for code, resp in resps.items():
                rptr = pointer_join(optr, "responses", code)
                if not re.fullmatch(r"[1-5](\d\d|XX)|default", str(code)):
                    errs.append("%s: bad status key %r" % (rptr, code))
                errs.extend(lint_response(doc, resp, rptr))
    unknown = doc.get(UNKNOWN_PATH_KEY)
    if unknown is not None:
        errs.extend(lint_response(doc, unknown, "#/" + UNKNOWN_PATH_KEY))
    for name, resp in comps.get("responses", {}).items():
        errs.extend(lint_response(doc, resp, pointer_join("#/components/responses", name)))
    for name, schema in comps.get("schemas", {}).items():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.exceptions.SchemaError as e:
            errs.append("#/components/schemas/%s: not a valid JSON Schema: %s" % (name, e.message))
    return errs


def lint_response(doc, resp, rptr):
    errs = []
    resp, rptr = deref(doc, resp, rptr)
    if not isinstance(resp, dict) or not isinstance(resp.get("description"), str):
        return ["%s: a response needs a description" % rptr]
    headers = resp.get("headers", {})
    if not isinstance(headers, dict) or "$ref" in headers:
        return ["%s: headers must be a mapping of name to header" % rptr]
    for hname, h in headers.items():
        h, hptr = deref(doc, h, pointer_join(rptr, "headers", hname))
        if "schema" not in h:
            errs.append("%s: header needs a schema" % hptr)
        elif "$ref" not in h["schema"]:
            try:
                jsonschema.Draft202012Validator.check_schema(h["schema"])
            except jsonschema.exceptions.SchemaError as e:
                errs.append("%s: bad schema: %s" % (hptr, e.message))
        if not isinstance(h.get("required", False), bool):
            errs.append("%s: required is a boolean" % hptr)
    for mt, media in resp.get("content", {}).items():
        if not isinstance(media, dict) or "schema" not in media:
            errs.append("%s: media type %s needs a schema" % (rptr, mt))
    return errs


# ---- records ---------------------------------------------------------------------------------

def api_header_names(doc):
    """Every header name the document describes on some response, lower-cased."""
    names = set()
    for node, _ in walk(doc):
        if isinstance(node, dict) and "description" in node and isinstance(node.get("headers"),
                                                                             dict):
            names.update(h.lower() for h in node["headers"])
    return names


def find_response(doc, method, path, status):
    """(response, its pointer, a label) for the answer, or raises LookupError with the reason."""
    route = path.split("?", 1)[0]
    item = None
    for tmpl, candidate in doc["paths"].items():
        rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(tmpl)) + "$"
        if re.match(rx, route):
            item, iptr = candidate, pointer_join("#/paths", tmpl)
            break
    if item is None:
        unknown = doc.get(UNKNOWN_PATH_KEY)
        if unknown is None:
            raise LookupError("path %s is not described" % route)
        if status != 404:
            raise LookupError("path %s is not described, and status %d is not the 404 that %s "
                              "describes" % (route, status, UNKNOWN_PATH_KEY))
        return deref(doc, unknown, "#/" + UNKNOWN_PATH_KEY)
    m = method.lower()
    if m not in item or m not in METHODS:
        raise LookupError("method %s of %s is not described" % (method, route))
    resps = item[m]["responses"]
    rptr = pointer_join(iptr, m, "responses")
    for key in (str(status), "%sXX" % str(status)[0], "default"):
        if key in resps:
            return deref(doc, resps[key], pointer_join(rptr, key))
    raise LookupError("status %d of %s %s is not described" % (status, method, route))


def header_value(schema, text):
    """The header text as the JSON value its schema expects (integers for integer schemas)."""
    if schema.get("type") == "integer":
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        return text  # fails the schema with a clear message
    return text


def check_record(doc, rec, api_headers):
    """Problems with one recorded answer (empty list when it matches the document)."""
    try:
        method, path, status = rec["method"], rec["path"], int(rec["status"])
        headers = rec["headers"]
        body = rec.get("body")
    except (KeyError, TypeError, ValueError) as e:
        return ["malformed record: %s" % e]
    try:
        resp, rptr = find_response(doc, method, path, status)
    except LookupError as e:
        return [str(e)]
    errs = []
    got = {}
    for name, value in headers:
        got.setdefault(name.lower(), value)
    described = {}
    for hname, h in resp.get("headers", {}).items():
        h, hptr = deref(doc, h, pointer_join(rptr, "headers", hname))
        described[hname.lower()] = hname
        value = got.get(hname.lower())
        if value is None:
            if h.get("required", False):
                errs.append("missing required header %s (%s)" % (hname, hptr))
            continue
        sptr = pointer_join(hptr, "schema")
        schema, _ = deref(doc, h["schema"], sptr)
        for e in schema_errors(doc, sptr, header_value(schema, value)):
            errs.append("header %s: %r: %s" % (hname, value, e.split(": ", 1)[1]))
    for name in got:
        if name in api_headers and name not in described:
            errs.append("header %s is not described for this response (%s)" % (name, rptr))
    content = resp.get("content", {})
    ctype = (got.get("content-type") or "").split(";")[0].strip().lower()
    if not content:
        if body:
            errs.append("a body, but the response describes none (%s)" % rptr)
        return errs
    if ctype not in content:
        errs.append("Content-Type %r is not one of %s (%s)" % (ctype, sorted(content), rptr))
        return errs
    if method.upper() == "HEAD":
        return errs
    sptr = pointer_join(rptr, "content", ctype, "schema")
    if ctype == "application/json" or ctype.endswith("+json"):
        try:
            instance = json.loads(body if body is not None else "")
        except ValueError as e:
            return errs + ["body is not JSON (%s): %r" % (e, body)]
    else:
        instance = body
    for e in schema_errors(doc, sptr, instance):
        errs.append("body %s" % e)
    return errs


def described_answers(doc):
    out = set()
    for tmpl, item in doc["paths"].items():
        for m in METHODS:
            if m in item:
                for code in item[m]["responses"]:
                    out.add((tmpl, m.upper(), str(code)))
    return out


def check_records(doc, lines):
    api_headers = api_header_names(doc)
    failed = checked = 0
    seen = set()
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        checked += 1
        try:
            rec = json.loads(line)
        except ValueError as e:
            errs = ["line is not JSON: %s" % e]
            rec = {}
        else:
            errs = check_record(doc, rec, api_headers)
            route = str(rec.get("path", "")).split("?", 1)[0]
            seen.add((route, str(rec.get("method", "")).upper(), str(rec.get("status"))))
        if errs:
            failed += 1
            print("record %d: %s %s -> %s" % (n, rec.get("method"), rec.get("path"),
                                              rec.get("status")))
            for e in errs:
                print("    " + e)
    return checked, failed, seen


# ---- self-test -------------------------------------------------------------------------------

def _hdrs(*extra, ctype="application/json", rl=True):
    h = [["Content-Type", ctype], ["X-Request-Id", "req-1"], ["Cache-Control", "no-store"]]
    if rl:
        h += [["RateLimit-Limit", "100"], ["RateLimit-Remaining", "99"], ["RateLimit-Reset", "1"]]
    return h + [list(x) for x in extra]


def _problem(status, slug, title, error, **more):
    p = {"type": "urn:herald:problem:" + slug, "title": title, "status": status,
         "detail": "d", "requestId": "req-1", "error": error}
    p.update(more)
    return json.dumps(p)


def self_test(doc):
    """Synthetic answers that must pass or fail, and broken documents that must fail the lint.
    Returns the number of cases that did not behave."""
    record = {"userId": "u", "deviceId": "d", "expoPushToken": "ExponentPushToken[x]",
              "platform": "ios", "registeredAt": "2025-01-01T00:00:00.000Z",
              "updatedAt": "2025-01-01T00:00:00.000Z", "isActive": True,
              "expiresAt": 1767225600}
    list_ok = json.dumps({"success": True, "count": 1, "deviceTokens": [record]})
    p = "/v1/device-tokens"
    unauth = _problem(401, "unauthorized", "Unauthorized", "Unauthorized")
    limited = _problem(429, "rate-limited", "Too Many Requests", "Too many requests")
    cases = [
        # (what, record, None when it must pass / a substring of the expected error)
        ("GET 200 list", dict(method="GET", path=p, status=200, headers=_hdrs(), body=list_ok),
         None),
        ("GET 200 without rate-limit headers", dict(method="GET", path=p, status=200,
                                                    headers=_hdrs(rl=False), body=list_ok), None),
        ("POST 201", dict(method="POST", path=p, status=201, headers=_hdrs(), body=json.dumps(
            {"success": True, "message": "Device token registered", "deviceToken": record})),
         None),
        ("401 with WWW-Authenticate", dict(method="GET", path=p, status=401, headers=_hdrs(
            ("WWW-Authenticate", 'Bearer error="invalid_token"'),
            ctype="application/problem+json"), body=unauth), None),
        ("429 complete", dict(method="GET", path=p, status=429, headers=_hdrs(
            ("Retry-After", "3"), ctype="application/problem+json"), body=limited), None),
        ("HEAD 405 without body", dict(method="HEAD", path=p, status=405, headers=_hdrs(
            ("Allow", "GET, POST, DELETE"), ctype="application/problem+json", rl=False),
            body=""), None),
        ("unknown path 404", dict(method="GET", path="/v1/nope", status=404, headers=_hdrs(
            ctype="application/problem+json", rl=False),
            body=_problem(404, "not-found", "Not Found", "Not found")), None),
        # Each of these must be refused.
        ("undocumented status", dict(method="GET", path=p, status=418, headers=_hdrs(),
                                     body=list_ok), "status 418"),
        ("409 is not a GET answer", dict(method="GET", path=p, status=409, headers=_hdrs(
            ctype="application/problem+json"), body=_problem(
            409, "too-many-devices", "Conflict", "Too many devices")), "status 409"),
        ("undocumented method", dict(method="COPY", path=p, status=405, headers=_hdrs(),
                                     body=""), "method COPY"),
        ("unknown path with 200", dict(method="GET", path="/v2/x", status=200, headers=_hdrs(),
                                       body=list_ok), "not described"),
        ("429 without Retry-After", dict(method="GET", path=p, status=429, headers=_hdrs(
            ctype="application/problem+json"), body=limited), "missing required header Retry-After"),
        ("429 without RateLimit-Remaining", dict(method="GET", path=p, status=429, headers=[
            h for h in _hdrs(("Retry-After", "3"), ctype="application/problem+json")
            if h[0] != "RateLimit-Remaining"], body=limited),
         "missing required header RateLimit-Remaining"),
        ("401 without WWW-Authenticate", dict(method="GET", path=p, status=401, headers=_hdrs(
            ctype="application/problem+json"), body=unauth),
         "missing required header WWW-Authenticate"),
        ("405 without Allow", dict(method="PUT", path=p, status=405, headers=_hdrs(
            ctype="application/problem+json", rl=False), body=_problem(
            405, "method-not-allowed", "Method Not Allowed", "Method not allowed")),
         "missing required header Allow"),
        ("no X-Request-Id", dict(method="GET", path=p, status=200, headers=[
            h for h in _hdrs() if h[0] != "X-Request-Id"], body=list_ok),
         "missing required header X-Request-Id"),
        ("503 Retry-After not 1", dict(method="GET", path=p, status=503, headers=_hdrs(
            ("Retry-After", "5"), ctype="application/problem+json"), body=_problem(
            503, "unavailable", "Service Unavailable", "Service unavailable")),
         "header Retry-After"),
        ("RateLimit-Limit not a number", dict(method="GET", path=p, status=200, headers=[
            ["RateLimit-Limit", "lots"] if h[0] == "RateLimit-Limit" else h for h in _hdrs()],
            body=list_ok), "header RateLimit-Limit"),
        ("Retry-After on a 200", dict(method="GET", path=p, status=200, headers=_hdrs(
            ("Retry-After", "1")), body=list_ok), "header retry-after is not described"),
        ("rate-limit headers on a 413", dict(method="POST", path=p, status=413, headers=_hdrs(
            ctype="application/problem+json"), body=_problem(
            413, "too-large", "Content Too Large", "Request body too large")),
         "header ratelimit-limit is not described"),
        ("wrong Content-Type", dict(method="GET", path=p, status=200, headers=_hdrs(
            ctype="text/html"), body=list_ok), "Content-Type 'text/html'"),
        ("count is a string", dict(method="GET", path=p, status=200, headers=_hdrs(),
                                   body=list_ok.replace('"count": 1', '"count": "1"')),
         "body count"),
        ("record member missing", dict(method="GET", path=p, status=200, headers=_hdrs(),
                                       body=list_ok.replace('"isActive": true, ', '')),
         "'isActive' is a required property"),
        ("problem status differs from HTTP status", dict(method="GET", path=p, status=401,
                                                         headers=_hdrs(("WWW-Authenticate",
                                                                        'Bearer realm="herald"'),
                                                                       ctype="application/problem+json"),
                                                         body=unauth.replace("401", "403")),
         "body status"),
        ("problem without requestId", dict(method="GET", path=p, status=429, headers=_hdrs(
            ("Retry-After", "3"), ctype="application/problem+json"),
            body=json.dumps({k: v for k, v in json.loads(limited).items() if k != "requestId"})),
         "'requestId' is a required property"),
        ("problem with an extra member", dict(method="GET", path=p, status=429, headers=_hdrs(
            ("Retry-After", "3"), ctype="application/problem+json"),
            body=limited[:-1] + ', "why": "x"}'), "Additional properties"),
        ("body not JSON", dict(method="GET", path=p, status=200, headers=_hdrs(), body="<html>"),
         "not JSON"),
    ]
    bad = 0
    api_headers = api_header_names(doc)
    for what, rec, want in cases:
        errs = check_record(doc, rec, api_headers)
        if want is None and errs:
            bad += 1
            print("self-test: %s: should pass, got %s" % (what, errs))
        elif want is not None and not any(want in e for e in errs):
            bad += 1
            print("self-test: %s: should fail with %r, got %s" % (what, want, errs or "no error"))
    # Broken documents fail the lint.
    broken = []
    d = copy.deepcopy(doc)
    d["openapi"] = "3.0.3"
    broken.append(("openapi 3.0", d, "openapi must be 3.1.x"))
    d = copy.deepcopy(doc)
    del d["paths"]
    broken.append(("no paths", d, "paths must be"))
    d = copy.deepcopy(doc)
    del d["components"]["schemas"]["Problem"]
    broken.append(("dangling $ref", d, "unresolved $ref #/components/schemas/Problem"))
    d = copy.deepcopy(doc)
    d["components"]["schemas"]["Platform"]["type"] = 7
    broken.append(("bad schema", d, "not a valid JSON Schema"))
    d = copy.deepcopy(doc)
    del d["components"]["responses"]["RateLimited"]["description"]
    broken.append(("response without description", d, "needs a description"))
    for what, d, want in broken:
        errs = lint(d)
        if not any(want in e for e in errs):
            bad += 1
            print("self-test: lint of %s: should fail with %r, got %s" % (what, want, errs))
    print("self-test: %d cases, %d misbehaved" % (len(cases) + len(broken), bad))
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--lint", action="store_true")
    ap.add_argument("--records")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    with open(a.spec) as f:
        try:
            doc = yaml.safe_load(f)
        except yaml.YAMLError as e:
            print("%s: not YAML: %s" % (a.spec, e))
            return 1
    errs = lint(doc)
    for e in errs:
        print("%s: %s" % (a.spec, e))
    if errs:
        return 1
    print("%s: OpenAPI %s, %d paths, lint passed" % (a.spec, doc["openapi"], len(doc["paths"])))
    status = 0
    if a.self_test and self_test(doc):
        status = 1
    if a.records:
        with open(a.records) as f:
            lines = f.readlines()
        checked, failed, seen = check_records(doc, lines)
        if checked == 0:
            print("%s: no recorded answers (was test_api run with HERALD_TEST_API_RECORD?)"
                  % a.records)
            return 1
        uncovered = sorted(described_answers(doc) - seen)
        if uncovered:
            print("described but not exercised by the suite: " +
                  ", ".join("%s %s %s" % (m, p, s) for p, m, s in uncovered))
        print("%d passed, %d failed" % (checked - failed, failed))
        if failed:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
