"""A bare aiohttp handler that returns fixed JSON bytes: the baseline for the API's reads.

.venv/bin/python -m bench.bare_http PORT FILE
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web

from common.lifecycle import event_loop_factory


def main(port: int, body: bytes) -> None:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/", handler)
    # the API's own event loop: like against like
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=event_loop_factory()())


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]).read_bytes())
