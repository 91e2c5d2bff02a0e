#!/usr/bin/env python3
"""A WebSocket server and client Warden did not write (the `websockets` package), for the
end-to-end tests.

  ws_peer.py serve          echoes every message upper-cased on 127.0.0.1 (a free port);
                            prints {"listening": PORT}
  ws_peer.py talk URL JSON  opens URL (extra headers from JSON's "headers"), sends each of
                            JSON's "messages" and reads its echo; prints the result:
                            {"status": 101 | the refusal's status, "echoes": [...], "error": ...}
  ws_peer.py chat URL       opens URL and prints {"status": 101}; then sends each line read
                            from stdin and prints {"echo": ...} for it; at the end of stdin
                            closes and prints {"closed": true}. The test decides when each
                            message goes (after a policy change, say), not a timer. The
                            line "?wait-close" sends nothing: it waits for the other side
                            to close and prints {"peer_closed": true}.
"""

import asyncio
import json
import sys

import websockets


async def serve():
    async def echo(ws):
        async for message in ws:
            await ws.send(message.upper())

    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"listening": port}), flush=True)
        await asyncio.Future()


async def talk(url, spec):
    spec = json.loads(spec)
    out = {"status": None, "echoes": [], "error": None}
    try:
        async with websockets.connect(url, additional_headers=spec.get("headers", {}), proxy=None) as ws:
            out["status"] = 101
            for m in spec.get("messages", []):
                await ws.send(m)
                out["echoes"].append(await asyncio.wait_for(ws.recv(), 10))
    except websockets.exceptions.InvalidStatus as e:
        out["status"] = e.response.status_code
        out["error"] = e.response.body.decode(errors="replace") if e.response.body else str(e)
    except Exception as e:  # noqa: BLE001 - the test reads what went wrong
        out["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out), flush=True)


async def chat(url):
    lines = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(lines), sys.stdin)
    async with websockets.connect(url, proxy=None) as ws:
        print(json.dumps({"status": 101}), flush=True)
        while line := await lines.readline():
            if line.strip() == b"?wait-close":
                try:
                    await asyncio.wait_for(ws.recv(), 60)
                except websockets.ConnectionClosed:
                    print(json.dumps({"peer_closed": True}), flush=True)
                    return
                continue
            await ws.send(line.decode().strip())
            print(json.dumps({"echo": await asyncio.wait_for(ws.recv(), 10)}), flush=True)
    print(json.dumps({"closed": True}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        asyncio.run(serve())
    elif sys.argv[1] == "chat":
        asyncio.run(chat(sys.argv[2]))
    else:
        asyncio.run(talk(sys.argv[2], sys.argv[3]))
