# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The S3 endpoint as fault1's backup jobs see it: a TCP relay from 127.0.0.1:LISTEN to the moto
server on 127.0.0.1:TARGET, run as fault-proxy.service on the host (molecule faults scenario).

    python3 fault_proxy.py LISTEN TARGET

`systemctl stop fault-proxy` is the endpoint going down: new connections are refused and the
open ones are cut, whatever request is on its way. Bytes pass unchanged (request signatures
stay valid). Only 127.0.0.1 is ever contacted."""

import asyncio
import sys

CHUNK = 1 << 16


async def relay(reader, writer):
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def connect(client_reader, client_writer, target):
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(relay(client_reader, upstream_writer), relay(upstream_reader, client_writer))


async def serve(listen, target):
    server = await asyncio.start_server(lambda r, w: connect(r, w, target), "127.0.0.1", listen)
    print(f"relaying 127.0.0.1:{listen} to 127.0.0.1:{target}", flush=True)
    async with server:
        await server.serve_forever()


def main():
    listen, target = (int(value) for value in sys.argv[1:3])
    asyncio.run(serve(listen, target))


if __name__ == "__main__":
    main()
