"""A lenient WSGI app, the other side of Warden's differential tests.

It is the app Warden must never disagree with: Python's own wsgiref server decodes the
path (PATH_INFO, `%2F` included) and maps header names to CGI variables (`x_warden_client`
and `X-Warden-Client` both become HTTP_X_WARDEN_CLIENT, joined with a comma), and the app
then routes as lenient frameworks do: empty and `.` segments dropped, `..` resolved,
`;params` and trailing dots dropped, one trailing slash ignored, the host lower-cased
without its port or trailing dot, the method upper-cased, and case folded when told to.

    python3 lenient_app.py ROUTES_JSON [--fold-case]

ROUTES_JSON is a list of {"name", "host", "exact", "prefix", "methods"} in policy order.
It prints `listening port=N` once bound on 127.0.0.1, and one JSON line per request it
answers; each answer is JSON: the route this app took, the route Warden says it took
(`x-test-route`), what the app saw, and every CGI header variable whose value was forged
(contains "forged").
"""

import json
import socketserver
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

ROUTES = json.loads(sys.argv[1])
FOLD = "--fold-case" in sys.argv[2:]


def app_path(path_info):
    segs = []
    for seg in path_info.split("/"):
        seg = seg.split(";", 1)[0]
        if seg in ("", "."):
            continue
        if seg == "..":
            if segs:
                segs.pop()
            continue
        segs.append(seg.rstrip(".") or seg)
    path = "/" + "/".join(segs)
    return path.lower() if FOLD else path


def app_host(raw):
    host = raw.strip().lower()
    if host.startswith("["):
        host = host.split("]", 1)[0] + "]"
    else:
        host = host.rsplit(":", 1)[0] if ":" in host else host
    return host[:-1] if host.endswith(".") else host


def matches(route, method, host, path):
    if route.get("host") and route["host"] != host:
        return False
    exact, prefix = route.get("exact"), route.get("prefix")
    if FOLD:
        exact, prefix = exact and exact.lower(), prefix and prefix.lower()
    if exact and path != exact:
        return False
    if prefix and prefix != "/" and not (path == prefix or path.startswith(prefix + "/")):
        return False
    if route.get("methods") and method not in route["methods"]:
        return False
    return True


def application(environ, start_response):
    method = environ["REQUEST_METHOD"].upper()
    host = app_host(environ.get("HTTP_HOST", ""))
    path = app_path(environ.get("PATH_INFO", ""))
    route = next((r["name"] for r in ROUTES if matches(r, method, host, path)), None)
    seen = {
        "app_route": route,
        "warden_route": environ.get("HTTP_X_TEST_ROUTE"),
        "method": method,
        "host": environ.get("HTTP_HOST"),
        "path_info": environ.get("PATH_INFO"),
        "app_path": path,
        "forged": sorted(k for k, v in environ.items() if k.startswith("HTTP_") and "forged" in str(v)),
    }
    body = json.dumps(seen).encode()
    print(json.dumps(seen), flush=True)
    start_response("200 OK", [("content-type", "application/json"), ("content-length", str(len(body)))])
    return [body]


class Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = make_server("127.0.0.1", 0, application, server_class=Server, handler_class=Quiet)
    print(f"listening port={server.server_address[1]}", flush=True)
    server.serve_forever()
