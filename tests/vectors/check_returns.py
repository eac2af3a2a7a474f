#!/usr/bin/env python3
"""Checks tests/vectors/returns.json with Python's standard library only (hmac, hashlib,
base64), from the format the magic_link::returns module docs describe: every valid URL is
rebuilt from its return URL and parameters byte for byte and verifies; every invalid one fails
with its expected error. Exits non-zero on the first mismatch.

    python3 tests/vectors/check_returns.py [path/to/returns.json]
"""
import base64
import hashlib
import hmac
import json
import os
import sys

NAMES = ["session_id", "link_id", "reference", "status", "outcome", "timestamp"]
REQUIRED = ["session_id", "link_id", "status", "timestamp"]


def encode(value):
    """The WHATWG application/x-www-form-urlencoded byte serializer (not quote_plus: '~')."""
    out = []
    for b in value.encode("utf-8"):
        if (0x30 <= b <= 0x39) or (0x41 <= b <= 0x5A) or (0x61 <= b <= 0x7A) or b in b"*-._":
            out.append(chr(b))
        elif b == 0x20:
            out.append("+")
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def decode(raw):
    """Form-urlencoded decoding to bytes; a '%' without two hex digits stays as it is."""
    out = bytearray()
    i = 0
    hexdigits = b"0123456789abcdefABCDEF"
    data = raw.encode("ascii")
    while i < len(data):
        c = data[i]
        if c == ord("+"):
            out.append(0x20)
        elif c == ord("%") and len(data[i + 1:i + 3]) == 2 and all(h in hexdigits for h in data[i + 1:i + 3]):
            out.append(int(data[i + 1:i + 3], 16))
            i += 3
            continue
        else:
            out.append(c)
        i += 1
    return bytes(out)


def name_of(piece):
    return decode(piece.split("=", 1)[0])


def key_of(secret):
    assert secret.startswith("whsec_")
    return base64.b64decode(secret[len("whsec_"):])


def tag(key, context, q):
    return hmac.new(key, context + q.encode("ascii"), hashlib.sha256).digest()


def sign(return_url, params, key, context):
    pairs = [(n, params[n]) for n in NAMES if params.get(n) is not None]
    appended = "&".join(n + "=" + encode(str(v)) for n, v in pairs)
    if "?" not in return_url:
        url = return_url + "?" + appended
    elif return_url.endswith("?"):
        url = return_url + appended
    else:
        url = return_url + "&" + appended
    q = url.split("?", 1)[1]
    signature = "v1," + base64.urlsafe_b64encode(tag(key, context, q)).decode().rstrip("=")
    return q, signature, url + "&signature=" + encode(signature)


def verify(url, keys, context, now, tolerance):
    """Returns ("ok", params) or (error, parameter)."""
    if len(url) > 8192 or any(not (0x21 <= ord(c) <= 0x7E) for c in url):
        return ("malformed", None)
    query = url.split("?", 1)[1] if "?" in url else url
    query = query.split("#", 1)[0]
    pieces = query.split("&")
    counts = {n: 0 for n in NAMES + ["signature"]}
    for piece in pieces:
        name = name_of(piece)
        for n in counts:
            if name == n.encode():
                counts[n] += 1
    if counts["signature"] == 0:
        return ("missing_parameter", "signature")
    if counts["signature"] > 1:
        return ("duplicate_parameter", "signature")
    signed, _, last = query.rpartition("&")
    if name_of(last) != b"signature":
        return ("signature_not_last", None)
    for n in NAMES:
        if counts[n] > 1:
            return ("duplicate_parameter", n)
    for n in REQUIRED:
        if counts[n] == 0:
            return ("missing_parameter", n)
    value = decode(last.split("=", 1)[1] if "=" in last else "")
    if not value.startswith(b"v1,") or len(value) != 46:
        return ("bad_signature", None)
    try:
        given = base64.urlsafe_b64decode(value[3:] + b"=")
    except ValueError:
        return ("bad_signature", None)
    # Rejects non-canonical trailing bits, as a strict decoder does.
    if base64.urlsafe_b64encode(given).rstrip(b"=") != value[3:]:
        return ("bad_signature", None)
    if not any(hmac.compare_digest(tag(k, context, signed), given) for k in keys):
        return ("bad_signature", None)
    params = {n: None for n in NAMES}
    for piece in signed.split("&"):
        name = name_of(piece).decode("utf-8", "replace")
        if name in params:
            params[name] = decode(piece.split("=", 1)[1] if "=" in piece else "").decode("utf-8")
    if params["status"] not in ("completed", "quit"):
        return ("invalid_parameter", "status")
    if params["outcome"] not in (None, "approved", "denied", "needs_review"):
        return ("invalid_parameter", "outcome")
    params["timestamp"] = int(params["timestamp"])
    if params["timestamp"] < now - tolerance:
        return ("timestamp_too_old", None)
    if params["timestamp"] > now + tolerance:
        return ("timestamp_too_new", None)
    return ("ok", params)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "returns.json")
    with open(path, encoding="utf-8") as f:
        vectors = json.load(f)
    context = vectors["context"].encode("utf-8")
    assert context == b"magic-link/v1/return\n", context
    key = key_of(vectors["secret"])
    now, tolerance = vectors["now"], vectors["tolerance_seconds"]
    failures = 0
    for v in vectors["valid"]:
        q, signature, url = sign(v["return_url"], v["params"], key, context)
        got = (q, signature, url)
        want = (v["signed_content"], v["signature"], v["url"])
        if got != want:
            print("valid %r: rebuilt %r, expected %r" % (v["name"], got, want))
            failures += 1
        result = verify(v["url"], [key], context, now, tolerance)
        if result != ("ok", v["params"]):
            print("valid %r: verified as %r" % (v["name"], result))
            failures += 1
    for v in vectors["invalid"]:
        result = verify(v["url"], [key], context, now, tolerance)
        want = (v["error"], v.get("parameter"))
        if result != want:
            print("invalid %r: got %r, expected %r" % (v["name"], result, want))
            failures += 1
    if failures:
        print("check_returns.py: %d failure(s)" % failures)
        sys.exit(1)
    print("check_returns.py: %d valid and %d invalid vectors agree" % (len(vectors["valid"]), len(vectors["invalid"])))


if __name__ == "__main__":
    main()
