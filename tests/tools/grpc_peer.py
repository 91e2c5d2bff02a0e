#!/usr/bin/env python3
"""A gRPC server and client that Warden did not write (grpcio, C-core), for the
end-to-end tests. No generated code: generic handlers and raw bytes.

  grpc_peer.py serve [--tls CERT KEY] [--client-ca CA]
      Serves warden.test.Echo on 127.0.0.1 (a free port); prints {"listening": PORT}.
  grpc_peer.py calls TARGET JSON
      Makes the calls JSON lists, each {"name", "method", "kind": unary|server|client|bidi,
      "messages": [str], "metadata": {k: v}, "timeout": seconds, "hold": true for a
      client that keeps its side open after its messages until the call ends}, over plaintext HTTP/2 to
      TARGET, and prints one JSON list of results: name, code, details, responses,
      initial and trailing metadata, seconds taken.

The service (any service name is answered, so routes can sort calls by service):
  Unary        echoes the message; initial metadata echoes x-echo, and says what the
               server saw (te, x-warden-*, x-forwarded-for); trailing metadata x-trailer: done.
               The message "fail" ends NOT_FOUND with a non-ASCII message.
  Deadline     answers with the time the server has left (its grpc-timeout), in ms.
  ServerStream the message is a count N: N messages "0".."N-1".
  ClientStream answers with the messages joined by ",".
  Bidi         answers each message upper-cased, as it comes.
"""

import json
import sys
import threading
import time
from concurrent import futures

import grpc


def _seen(context):
    md = dict(context.invocation_metadata())
    out = [("x-echo", md.get("x-echo", ""))]
    for k in ("te", "x-warden-client", "x-warden-auth", "x-forwarded-for", "x-request-id"):
        if k in md:
            out.append(("x-seen-" + k, md[k]))
    return out


def unary(request, context):
    context.send_initial_metadata(_seen(context))
    if request == b"fail":
        context.set_trailing_metadata((("x-trailer", "failed"),))
        context.abort(grpc.StatusCode.NOT_FOUND, "nothing here \u2713 100%")
    context.set_trailing_metadata((("x-trailer", "done"),))
    return request


def deadline(request, context):
    left = context.time_remaining()
    return str(-1 if left is None else int(left * 1000)).encode()


def server_stream(request, context):
    context.send_initial_metadata(_seen(context))
    for i in range(int(request or b"0")):
        yield str(i).encode()
    context.set_trailing_metadata((("x-trailer", "streamed"),))


def client_stream(request_iterator, context):
    got = [m.decode() for m in request_iterator]
    context.set_trailing_metadata((("x-count", str(len(got))),))
    return ",".join(got).encode()


def bidi(request_iterator, context):
    for m in request_iterator:
        yield m.upper()


class Any(grpc.GenericRpcHandler):
    """Answers every service by method name."""

    HANDLERS = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Deadline": grpc.unary_unary_rpc_method_handler(deadline),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    }

    def service(self, handler_call_details):
        return self.HANDLERS.get(handler_call_details.method.rsplit("/", 1)[-1])


def serve(args):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((Any(),))
    if "--tls" in args:
        i = args.index("--tls")
        cert, key = open(args[i + 1], "rb").read(), open(args[i + 2], "rb").read()
        ca = None
        if "--client-ca" in args:
            ca = open(args[args.index("--client-ca") + 1], "rb").read()
        creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(json.dumps({"listening": port}), flush=True)
    server.wait_for_termination()


def call(channel, c):
    kind, method = c.get("kind", "unary"), c["method"]
    msgs = [m.encode() for m in c.get("messages", [""])]
    timeout = c.get("timeout", 20)
    ended = threading.Event()

    def stream():
        yield from msgs
        # A client that keeps its side open (a long bidi call) until the call ends.
        if c.get("hold"):
            ended.wait(timeout)

    md = list(c.get("metadata", {}).items())
    started = time.monotonic()
    result = {"name": c.get("name", method), "responses": []}
    rpc = None
    try:
        if kind == "unary":
            resp, rpc = channel.unary_unary(method).with_call(msgs[0], metadata=md, timeout=timeout)
            result["responses"] = [resp.decode()]
        elif kind == "server":
            rpc = channel.unary_stream(method)(msgs[0], metadata=md, timeout=timeout)
            result["responses"] = [m.decode() for m in rpc]
        elif kind == "client":
            resp, rpc = channel.stream_unary(method).with_call(stream(), metadata=md, timeout=timeout)
            result["responses"] = [resp.decode()]
        else:
            rpc = channel.stream_stream(method)(stream(), metadata=md, timeout=timeout)
            result["responses"] = [m.decode() for m in rpc]
        result["code"] = rpc.code().name
        result["details"] = rpc.details()
    except grpc.RpcError as e:
        rpc = e
        result["code"] = e.code().name
        result["details"] = e.details()
    finally:
        ended.set()
    result["seconds"] = round(time.monotonic() - started, 3)
    for which in ("initial_metadata", "trailing_metadata"):
        try:
            result[which] = {k: v for k, v in (getattr(rpc, which)() or ()) if isinstance(v, str)}
        except Exception:  # noqa: BLE001 - a call that never started has none
            result[which] = {}
    return result


def calls(target, spec):
    channel = grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)])
    print(json.dumps([call(channel, c) for c in json.loads(spec)]), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2:])
    elif sys.argv[1] == "calls":
        calls(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")
