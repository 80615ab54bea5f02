"""A webhook receiver fast enough not to be what a benchmark measures: a bare asyncio HTTP/1.1
server with keep-alive that answers every POST 200 at once and notes when each `webhook-id`
arrived. `GET /_arrivals` returns {"count": n, "arrivals": {webhook_id: unix_time}} and clears.
`POST /slow` is noted on arrival too but answered only after SLOW_S: a slow endpoint that keeps
a deliver loop's requests on the wire.

Run: python bench/receiver.py PORT
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
SLOW_S = 1.0


class Receiver(asyncio.Protocol):
    arrivals: dict[str, float] = {}
    count = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < head_end + 4 + length:
                return
            self.buffer = self.buffer[head_end + 4 + length :]
            self.respond(head[0], headers)

    def respond(self, request_line: str, headers: dict[str, str]) -> None:
        if request_line.startswith("GET /_arrivals"):
            body = json.dumps({"count": Receiver.count, "arrivals": Receiver.arrivals}).encode()
            Receiver.arrivals = {}
            Receiver.count = 0
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            return
        Receiver.count += 1
        webhook_id = headers.get("webhook-id")
        if webhook_id:
            Receiver.arrivals.setdefault(webhook_id, time.time())
        if request_line.startswith("POST /slow"):
            # Answers stay in request order on a connection as long as the client does not
            # pipeline, which aiohttp (the deliver loop's client) does not.
            asyncio.get_running_loop().call_later(SLOW_S, self.answer_late)
            return
        self.transport.write(_OK)

    def answer_late(self) -> None:
        # The client may have timed out and closed the connection meanwhile.
        if not self.transport.is_closing():
            self.transport.write(_OK)


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Receiver, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
