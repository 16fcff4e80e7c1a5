"""A real gRPC server and client (grpcio, Debian's python3-grpcio) for the end-to-end tests, with
raw bytes as messages (generic handlers: no generated code needed, the wire is gRPC all the same).

Usage:
  grpc_calls.py server HOST PORT READY_FILE   serve until killed (at most 120 s)
  grpc_calls.py client HOST PORT              make a fixed set of calls; print one JSON object:
                                              {"/demo.Echo/Get": {"OK": 20, "NOT_FOUND": 5, ...}, ...}
  grpc_calls.py client HOST PORT READY GO     first one call on the channel, write READY, wait for
                                              GO to exist (at most 30 s), then the same set on the
                                              same connection; report those only

Methods (package demo, service Echo):
- Get (unary): b"missing" -> NOT_FOUND, b"down" -> UNAVAILABLE, b"boom" -> INTERNAL,
  b"slow" -> answers after 2 s (the client's deadline of 0.3 s expires first), else echoes OK.
- Stream (server streaming): as many messages as the request's first byte says.
- Collect (client streaming): answers with the count of messages received.
- Chat (bidirectional): echoes every message.
"""

import json
import os
import sys
import threading
import time
from concurrent import futures

import grpc

SERVICE = "demo.Echo"


def get(request, context):
    if request == b"missing":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    if request == b"down":
        context.abort(grpc.StatusCode.UNAVAILABLE, "try later")
    if request == b"boom":
        context.abort(grpc.StatusCode.INTERNAL, "it broke")
    if request == b"slow":
        time.sleep(2)
    return request


def stream(request, context):
    for i in range(request[0] if request else 1):
        yield bytes([i]) * 10


def collect(requests, context):
    return str(sum(1 for _ in requests)).encode()


def chat(requests, context):
    for r in requests:
        yield r


def serve(host, port, ready):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    handlers = {
        "Get": grpc.unary_unary_rpc_method_handler(get),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "Collect": grpc.stream_unary_rpc_method_handler(collect),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_insecure_port(f"{host}:{port}")
    server.start()
    with open(ready, "w") as f:
        f.write("ready\n")
    # Bounded: a failed test never leaves it running.
    threading.Timer(120, lambda: server.stop(0)).start()
    server.wait_for_termination(timeout=125)


def run_client(host, port, ready=None, go=None):
    seen = {}

    def note(method, code):
        m = seen.setdefault(f"/{SERVICE}/{method}", {})
        m[code.name] = m.get(code.name, 0) + 1

    with grpc.insecure_channel(f"{host}:{port}") as ch:
        unary = ch.unary_unary(f"/{SERVICE}/Get")
        if ready:
            # The connection opens (and its HPACK tables fill) before the capture starts.
            unary(b"before", timeout=10)
            with open(ready, "w") as f:
                f.write("ready\n")
            deadline = time.monotonic() + 30
            while not os.path.exists(go) and time.monotonic() < deadline:
                time.sleep(0.05)
        calls = [b"hello"] * 20 + [b"missing"] * 5 + [b"down"] * 4 + [b"boom"] * 3 + [b"slow"] * 2
        for req in calls:
            try:
                unary(req, timeout=0.3 if req == b"slow" else 10)
                note("Get", grpc.StatusCode.OK)
            except grpc.RpcError as e:
                note("Get", e.code())
        server_stream = ch.unary_stream(f"/{SERVICE}/Stream")
        for n in (1, 3, 10, 50, 100):
            try:
                for _ in server_stream(bytes([n]), timeout=10):
                    pass
                note("Stream", grpc.StatusCode.OK)
            except grpc.RpcError as e:
                note("Stream", e.code())
        client_stream = ch.stream_unary(f"/{SERVICE}/Collect")
        for n in (1, 5, 20):
            try:
                client_stream(iter([b"x" * 100] * n), timeout=10)
                note("Collect", grpc.StatusCode.OK)
            except grpc.RpcError as e:
                note("Collect", e.code())
        bidi = ch.stream_stream(f"/{SERVICE}/Chat")
        for n in (2, 7, 30):
            try:
                for _ in bidi(iter([b"y" * 50] * n), timeout=10):
                    pass
                note("Chat", grpc.StatusCode.OK)
            except grpc.RpcError as e:
                note("Chat", e.code())
    # Let the deadline-expired calls' last frames cross the wire before the channel's close.
    time.sleep(0.5)
    print(json.dumps(seen, sort_keys=True))


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        run_client(sys.argv[2], int(sys.argv[3]), *sys.argv[4:6])
