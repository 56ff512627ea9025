"""Prints, from golive's /metrics, the answers each operation got during a schemathesis run,
and fails when an operation never got a 2xx: such an operation never reached the core logic.

Usage: schemathesis_coverage.py BASE_URL ADMIN_TOKEN OPENAPI_FILE [EXCLUDED_PATH...]
"""

import collections
import json
import re
import sys
import urllib.request

base, token, document = sys.argv[1], sys.argv[2], sys.argv[3]
excluded = set(sys.argv[4:])
request = urllib.request.Request(base + "/metrics", headers={"Authorization": "Bearer " + token})
text = urllib.request.urlopen(request).read().decode()
answers = collections.defaultdict(collections.Counter)
for line in text.splitlines():
    if not line.startswith("golive_http_requests_total{"):
        continue
    labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
    answers[(labels.get("method", "").upper(), labels.get("route", ""))][labels.get("status", "")] += int(float(line.rsplit(" ", 1)[1]))
paths = json.load(open(document))["paths"]
missing = []
for path, item in sorted(paths.items()):
    if path in excluded:
        continue
    for method in item:
        got = answers[(method.upper(), path)]
        two = sum(n for status, n in got.items() if status.startswith("2"))
        print(f"{method.upper():6} {path:45} 2xx={two:<5} " + " ".join(f"{s}:{n}" for s, n in sorted(got.items())))
        if two == 0:
            missing.append(f"{method.upper()} {path}")
print(f"{sum(len(i) for p, i in paths.items() if p not in excluded) - len(missing)} operations got a 2xx; none: {missing or 'none'}")
sys.exit(1 if missing else 0)
