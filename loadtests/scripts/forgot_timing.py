#!/usr/bin/env python3
"""Enumeration check for `POST /auth/password/forgot`: the answer time for an address that
has an account and for one that has none, interleaved, on a running server (BASE, default
http://127.0.0.1:8080) with RATE_LIMITS=off. Prints p50/p90/p99 of each and their ratio.

    loadtests/scripts/forgot_timing.py [BASE] [ROUNDS]
"""
import http.client, json, statistics, sys, time, urllib.parse

base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 500
url = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(url.hostname, url.port)

def post(path, body):
    conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()

known = f"timing-{int(time.time())}@example.com"
status, _ = post("/api/v1/auth/signup", {"name": "Timing Probe", "email": known, "password": "Timing-Probe-2026!"})
assert status == 201, status
times = {"known": [], "unknown": []}
answers = {"known": set(), "unknown": set()}
for i in range(rounds):
    for kind, email in (("known", known), ("unknown", f"nobody-{i}@example.com")):
        started = time.perf_counter()
        status, body = post("/api/v1/auth/password/forgot", {"email": email})
        times[kind].append((time.perf_counter() - started) * 1000)
        answers[kind].add((status, body))
assert answers["known"] == answers["unknown"], answers
def q(values, p):
    return statistics.quantiles(values, n=100)[p - 1]
for kind in times:
    v = times[kind]
    print(f"{kind:8} n={len(v)} p50={q(v,50):.3f} ms p90={q(v,90):.3f} ms p99={q(v,99):.3f} ms")
print(f"p50 ratio known/unknown = {q(times['known'],50)/q(times['unknown'],50):.3f}")
print("answers identical:", answers["known"] == answers["unknown"], next(iter(answers["known"])))
