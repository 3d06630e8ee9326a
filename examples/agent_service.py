"""The agent service of the agent-service clients, as a backend in Python.

It connects to wshub as a service connection (with the admin token), receives
the clients' application requests as `client_message`, and answers each with
`send`: `agent:start` -> `agent:started`, `agent:message` -> a `stream:chunk`
per word then `stream:complete`, `agent:cancel` -> `agent:cancelled`, and any
other type -> `error` with `payload.message`, as the agent service's own
server did.

    cargo run --release -- --admin-token s3cret &
    WSHUB_ADMIN_TOKEN=s3cret python3 examples/agent_service.py [ws://127.0.0.1:3000/ws]

Needs the `websockets` package (pip install websockets). It runs until the hub
closes the connection.
"""

import json, os, sys
from websockets.sync.client import connect

url = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:3000/ws"
# The service reads the standard envelope, whatever the hub's default.
joiner = "&" if "?" in url else "?"
token = os.environ["WSHUB_ADMIN_TOKEN"]
with connect(f"{url}{joiner}token={token}&envelope=standard") as hub:
    for frame in hub:
        event = json.loads(frame)
        if event["type"] != "client_message":
            continue
        client, request = event["data"]["clientId"], event["data"]["message"]

        def send(kind, payload, correlation=None):
            message = {"type": kind, "payload": payload, "correlationId": correlation}
            hub.send(json.dumps({"type": "send", "clientId": client, "message": message}))

        if request["type"] == "agent:start":
            send("agent:started", {"sessionId": client}, request.get("correlationId"))
        elif request["type"] == "agent:message":
            for word in request["payload"]["content"].split():
                send("stream:chunk", {"sessionId": client, "content": word + " "})
            send("stream:complete", {"sessionId": client})
        elif request["type"] == "agent:cancel":
            send("agent:cancelled", {"sessionId": client}, request.get("correlationId"))
        else:
            message = f"Unknown message type: {request['type']}"
            send("error", {"message": message}, request.get("correlationId"))
