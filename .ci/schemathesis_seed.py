"""Fetches golive's OpenAPI document from a running demo server and seeds it with real ids.

Schemathesis generates ids at random, and a random UUID names no integration: every route
under /api/v1/integrations/{id} would only ever answer 404 and the core logic would go
untested. So this script opens one integration of its own, issues its webhook credentials and
gives it an access token, then writes those real values into the document as `example`s
(path ids, the webhook token, a GitLab push delivery, a command body). The examples and
coverage phases use them; the stateful phase also follows the document's links from
`POST /api/v1/integrations` to the routes that take the new id.

Usage: schemathesis_seed.py BASE_URL ADMIN_TOKEN OUT_FILE
"""

import json
import pathlib
import sys
import urllib.request

base, token, out = sys.argv[1], sys.argv[2], sys.argv[3]


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + token)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request) as response:
        text = response.read()
        return json.loads(text) if text else None


doc = call("GET", "/api/v1/openapi.json")


def open_seed(name):
    opened = call("POST", "/api/v1/integrations", {"customer": f"Schemathesis {name}", "gitlab_url": "https://gitlab.seed.example"})
    return opened["id"]


# One integration per destructive route, so that the order operations run in does not matter:
# a generated `cancel` on the main one must not turn the receiver's or the reveal's cases into
# 409s, and a shred must not turn the reveal's into 410s.
seed = open_seed("main")
hooks_seed = open_seed("hooks")
issued = call("POST", f"/api/v1/integrations/{hooks_seed}/commands", {"type": "issue_webhook_credentials"})
reveal_seed = open_seed("reveal")
call("POST", f"/api/v1/integrations/{reveal_seed}/commands", {"type": "provide_access_token", "token": "glpat-seed-token", "admin": True})
shred_seed = open_seed("shred")
# A run of checks needs a token and something to look for; the instance does not resolve, so
# each run records a check that could not look and ends.
checks_seed = open_seed("checks")
call("POST", f"/api/v1/integrations/{checks_seed}/commands", {"type": "provide_access_token", "token": "glpat-seed-token", "admin": True})
call("POST", f"/api/v1/integrations/{checks_seed}/commands", {"type": "register_application", "name": "Factory Integration", "redirect_uri": "https://golive.seed.example/oauth/gitlab/callback", "application_id": "app-seed", "scopes": ["api"]})
playbook = dict(call("GET", "/api/v1/playbooks")["default"], id="schemathesis-seed", version=1)
call("POST", "/api/v1/playbooks", playbook)
call("POST", "/api/v1/tokens", {"name": "st-revocable", "role": "viewer"})
# A subscription and two notification rules (one to remove) for the routes that take their ids;
# the server runs with --no-outbound, so no made-up URL is ever visited.
subscription = call("POST", "/api/v1/subscriptions", {"name": "seed", "url": "https://hooks.seed.example/golive"})["subscription"]["id"]
rule = call("POST", "/api/v1/notification-rules", {"name": "seed", "on": [{"kind": "blocked"}], "sink": {"kind": "email", "to": ["rep@seed.example"]}})["id"]
removable_rule = call("POST", "/api/v1/notification-rules", {"name": "removable", "on": [{"kind": "blocked"}], "sink": {"kind": "email", "to": ["rep@seed.example"]}})["id"]
push = json.loads((pathlib.Path(__file__).parent.parent / "fixtures/gitlab/push.json").read_text())

examples = {
    ("/api/v1/playbooks/{id}", "id"): "schemathesis-seed",
    ("/api/v1/tokens/{name}", "name"): "st-revocable",
    ("/api/v1/tokens", "name"): "st-revocable",
    ("/api/v1/integrations/{id}/state", "version"): 1,
    ("/hooks/gitlab/{id}", "id"): hooks_seed,
    ("/hooks/gitlab/{id}", "X-Gitlab-Token"): issued["secret_token"],
    ("/api/v1/integrations/{id}/reveal", "id"): reveal_seed,
    ("/api/v1/integrations/{id}/shred", "id"): shred_seed,
    ("/api/v1/integrations/{id}/checks", "id"): checks_seed,
    ("/hooks/gitlab/{id}", "X-Gitlab-Event"): "Push Hook",
    ("/api/v1/subscriptions/{id}", "id"): subscription,
    ("/api/v1/subscriptions/{id}/pause", "id"): subscription,
    ("/api/v1/subscriptions/{id}/resume", "id"): subscription,
    ("/api/v1/subscriptions/{id}/replay", "id"): subscription,
    ("/api/v1/notification-rules/{id}", "id"): removable_rule,
}
bodies = {
    "/hooks/gitlab/{id}": push,
    "/api/v1/integrations/{id}/commands": {"type": "add_note", "text": "noted by schemathesis"},
    "/api/v1/integrations/{id}/reveal": {"secret": "access_token"},
    "/api/v1/integrations/{id}/checks": {"checks": ["application"]},
    "/api/v1/subscriptions": {"name": "example", "url": "https://hooks.seed.example/example"},
    "/api/v1/subscriptions/{id}/replay": {"from_position": 1},
    "/api/v1/notification-rules": {"name": "example", "on": [{"kind": "stalled", "days": 3}], "sink": {"kind": "email", "to": ["rep@seed.example"]}},
}
for path, item in doc["paths"].items():
    for operation in item.values():
        for parameter in operation.get("parameters") or []:
            key = (path, parameter["name"])
            if key in examples:
                parameter["example"] = examples[key]
            elif parameter["name"] == "id" and parameter["in"] == "path":
                parameter["example"] = seed
        if path in bodies and "requestBody" in operation:
            operation["requestBody"]["content"]["application/json"]["example"] = bodies[path]

pathlib.Path(out).write_text(json.dumps(doc, indent=1))
print(f"seeded the document with integration {seed}")
