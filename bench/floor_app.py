"""The floor: the least a websocket relay can do, to compare Cabinet against.

No sign-in, no database, no broker: ``/ws?u=<key>`` holds a socket for a recipient key, and
``POST /send`` with ``{"to": [keys], "event": {...}}`` writes the event to each of their
sockets before answering. The benchmark serves it with the same uvicorn settings as the app,
so the distance between the two is what Cabinet's sessions, access checks, transactions,
stored events and fan-out cost.
"""

from __future__ import annotations

import json
from collections import defaultdict

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

sockets: dict[str, set[WebSocket]] = defaultdict(set)


async def relay(ws: WebSocket) -> None:
    key = ws.query_params.get("u", "")
    await ws.accept()
    sockets[key].add(ws)
    try:
        # The same first frame as Cabinet's endpoint, so the client code is the same.
        await ws.send_text(json.dumps({"type": "ready", "seq": 0}))
        while True:
            await ws.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        group = sockets.get(key)
        if group is not None:
            group.discard(ws)
            if not group:
                del sockets[key]


async def send(request: Request) -> Response:
    body = await request.json()
    text = json.dumps(body["event"], separators=(",", ":"))
    for key in body["to"]:
        for ws in list(sockets.get(key, ())):
            try:
                await ws.send_text(text)
            except Exception:  # noqa: BLE001 - a socket closing meanwhile is not our problem
                pass
    return JSONResponse({"ok": True})


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True, "sockets": sum(len(s) for s in sockets.values())})


app = Starlette(
    routes=[
        WebSocketRoute("/ws", relay),
        Route("/send", send, methods=["POST"]),
        Route("/healthz", healthz),
    ]
)
