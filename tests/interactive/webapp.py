"""A small web app for the interactive-job tests, Python standard library only (it runs as a job's command).

``python3 webapp.py TOKEN``: listens on ``$JARVICE_SERVICE_PORT`` (all addresses),
serves under ``/$JARVICE_INGRESSPATH/`` when that is set (path-based routing), and answers:

* ``GET <base>?token=TOKEN``: a page whose script opens a WebSocket to ``<base>ws``,
  sends a message and writes what came back into ``#result`` (``echo ok: ...``);
  a wrong or missing token is ``403``;
* ``GET <base>whoami``: JSON with the node, the port, the ingress path and the
  SHA-256 of each ``/etc/JARVICE/random<N>.txt`` the app can read;
* ``GET <base>ws`` with ``Upgrade: websocket``: an echo server for text frames (RFC 6455).
"""

import base64
import hashlib
import json
import os
import socket
import struct
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TOKEN = sys.argv[1]
INGRESS = os.environ.get("JARVICE_INGRESSPATH", "")
BASE = f"/{INGRESS}/" if INGRESS else "/"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>dssr interactive test</title></head>
<body style="font: 28px sans-serif; margin: 40px">
<h1>dssr interactive test app</h1>
<p>node: <b>%(node)s</b></p>
<div id="result" style="padding: 20px; background: #fdd">waiting for the WebSocket echo...</div>
<script>
const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "%(base)sws";
const sent = "ping-" + Math.random().toString(36).slice(2);
const box = document.getElementById("result");
const ws = new WebSocket(url);
ws.onopen = () => ws.send(sent);
ws.onmessage = (event) => {
  if (event.data === "echo:" + sent) {
    box.textContent = "echo ok: " + event.data;
    box.style.background = "#9f9";
  } else {
    box.textContent = "echo wrong: " + event.data;
  }
  ws.close();
};
ws.onerror = () => { box.textContent = "websocket error"; };
</script>
</body></html>
"""


def read_frame(rfile):
    head = rfile.read(2)
    if len(head) < 2:
        return None, None
    opcode = head[0] & 0x0F
    length = head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", rfile.read(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", rfile.read(8))[0]
    mask = rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    data = bytearray(rfile.read(length))
    for i in range(len(data)):
        data[i] ^= mask[i % 4]
    return opcode, bytes(data)


def frame(opcode, data):
    if len(data) < 126:
        return bytes([0x80 | opcode, len(data)]) + data
    if len(data) < 65536:
        return bytes([0x80 | opcode, 126]) + struct.pack("!H", len(data)) + data
    return bytes([0x80 | opcode, 127]) + struct.pack("!Q", len(data)) + data


def etc_jarvice():
    found = {}
    for n in (16, 32, 64, 128):
        try:
            with open(f"/etc/JARVICE/random{n}.txt", "rb") as handle:
                found[str(n)] = hashlib.sha256(handle.read()).hexdigest()
        except OSError:
            pass
    return found


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("webapp: " + (fmt % args) + "\n")

    def reply(self, status, body, kind="text/plain; charset=utf-8"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        parts = urlsplit(self.path)
        if not parts.path.startswith(BASE):
            return self.reply(404, f"not under {BASE}\n")
        local = parts.path[len(BASE) :]
        if local == "ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket()
        if local == "whoami":
            info = {
                "node": socket.gethostname(),
                "port": os.environ.get("JARVICE_SERVICE_PORT"),
                "ingress": INGRESS,
                "etc_jarvice": etc_jarvice(),
                "path": parts.path,
            }
            return self.reply(200, json.dumps(info), "application/json")
        if local == "":
            if parse_qs(parts.query).get("token") != [TOKEN]:
                return self.reply(403, "wrong token\n")
            return self.reply(200, PAGE % {"node": socket.gethostname(), "base": BASE}, "text/html; charset=utf-8")
        return self.reply(404, "no such page\n")

    def websocket(self):
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        while True:
            opcode, data = read_frame(self.rfile)
            if opcode is None or opcode == 0x8:
                if opcode == 0x8:
                    self.wfile.write(frame(0x8, data[:2]))
                break
            if opcode == 0x9:
                self.wfile.write(frame(0xA, data))
            elif opcode in (0x1, 0x2):
                self.wfile.write(frame(opcode, b"echo:" + data))
            self.wfile.flush()
        self.close_connection = True


ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer(("0.0.0.0", int(os.environ["JARVICE_SERVICE_PORT"])), Handler)
sys.stderr.write(f"webapp: listening on {server.server_address} under {BASE}\n")
sys.stderr.flush()
server.serve_forever()
