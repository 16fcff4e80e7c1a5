"""An HTTP/2 server reached by the h2c upgrade (RFC 7540 3.2), for the end-to-end tests: it reads an
HTTP/1.1 request with `Upgrade: h2c`, answers 101 Switching Protocols, and continues in HTTP/2
(the `h2` library, Debian's python3-h2), answering the upgrade request as stream 1 and every later
stream. nginx does not do the upgrade and nghttpd (without TLS) answers only prior knowledge.

Usage: h2c_server.py HOST PORT READY_FILE LOG_FILE

Answers GET /bytes/N with N bytes and status 200, anything else with 404. Each answered stream is
one line of LOG_FILE: `STREAM PATH STATUS BODY_BYTES`. Stops by itself after 60 s.
"""

import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events

SWITCHING = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Connection: Upgrade\r\n"
    b"Upgrade: h2c\r\n\r\n"
)


def answer(conn, log, stream, headers):
    path = dict(headers).get(b":path", b"/").decode()
    parts = path.split("?")[0].strip("/").split("/")
    if len(parts) == 2 and parts[0] == "bytes" and parts[1].isdigit():
        status, body = 200, b"b" * int(parts[1])
    else:
        status, body = 404, b"not found\n"
    conn.send_headers(stream, [(":status", str(status)), ("content-length", str(len(body)))])
    # In frames no larger than the peer allows.
    size = conn.max_outbound_frame_size
    for i in range(0, len(body), size):
        conn.send_data(stream, body[i : i + size], end_stream=i + size >= len(body))
    if not body:
        conn.end_stream(stream)
    log.write(f"{stream} {path} {status} {len(body)}\n")
    log.flush()


def serve(sock, log):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    method, target, _ = lines[0].split(b" ", 2)
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_upgrade_connection(fields.get(b"http2-settings", b""))
    sock.sendall(SWITCHING + conn.data_to_send())
    answer(conn, log, 1, [(b":path", target), (b":method", method)])
    sock.sendall(conn.data_to_send())
    data = rest
    while True:
        if data:
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    answer(conn, log, ev.stream_id, ev.headers)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    sock.sendall(conn.data_to_send())
                    return
            sock.sendall(conn.data_to_send())
        data = sock.recv(65536)
        if not data:
            return


def main():
    host, port, ready, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(16)
    srv.settimeout(60)
    with open(ready, "w") as f:
        f.write("ready\n")
    log = open(log_path, "a")
    while True:
        try:
            sock, _ = srv.accept()
        except socket.timeout:
            return
        threading.Thread(target=serve, args=(sock, log), daemon=True).start()


if __name__ == "__main__":
    main()
