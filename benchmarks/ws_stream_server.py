"""Serve a recorded WebSocket stream as fast as the socket takes it (part 4 of bench_websocket).

Run by ``bench_websocket.py`` in a subprocess: ``python ws_stream_server.py FILE``,
where FILE holds the stream's frames exactly as they go on the wire (server frames
are not masked). It listens on 127.0.0.1, prints its port, and serves one
connection at a time: it answers the opening handshake, writes the whole file and
a close frame with blocking ``sendall`` (the kernel's socket buffers then stay full,
so the client always has data waiting), reads what the client sends until the
client's close frame, and closes the socket. It ends when its stdin closes.

Writing pre-built bytes costs this process far less per message than the client
spends taking them, so the client is the slower side, whatever it is.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import sys
import threading

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLOSE_FRAME = b"\x88\x02\x03\xe8"  # normal closure, code 1000


def handshake(conn: socket.socket) -> bool:
    """Read the client's upgrade request and accept it; False if the client left."""
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(4096)
        if not chunk:
            return False
        request += chunk
    key = b""
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    return True


def read_exact(conn: socket.socket, buffer: bytearray, size: int) -> bytes | None:
    """``size`` bytes from ``buffer``, refilled from ``conn``; None if the client left."""
    while len(buffer) < size:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    taken = bytes(buffer[:size])
    del buffer[:size]
    return taken


def until_close(conn: socket.socket) -> None:
    """Read the client's (masked) frames until its close frame or the end of the stream."""
    buffer = bytearray()
    while True:
        header = read_exact(conn, buffer, 2)
        if header is None:
            return
        opcode, length = header[0] & 0x0F, header[1] & 0x7F
        if length == 126:
            extended = read_exact(conn, buffer, 2)
            length = int.from_bytes(extended or b"", "big")
        elif length == 127:
            extended = read_exact(conn, buffer, 8)
            length = int.from_bytes(extended or b"", "big")
        masked = 4 if header[1] & 0x80 else 0
        if read_exact(conn, buffer, masked + length) is None or opcode == 0x8:
            return


def serve(conn: socket.socket, stream: bytes) -> None:
    """One connection: handshake, the whole stream and a close frame, then the client's close."""
    with conn:
        conn.settimeout(30)
        try:
            if not handshake(conn):
                return
            conn.sendall(stream)
            until_close(conn)
        except OSError:
            return  # the client went away mid-stream


def main() -> None:
    """Serve the recording named on the command line until stdin closes."""
    with open(sys.argv[1], "rb") as recording:
        stream = recording.read() + CLOSE_FRAME
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            serve(conn, stream)

    threading.Thread(target=accept, daemon=True).start()
    sys.stdin.read()  # the benchmark closes our stdin when it is done


if __name__ == "__main__":
    main()
