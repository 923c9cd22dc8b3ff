"""How many RPCs does a grpc.aio server start in one event-loop iteration?

Batched learner scoring (one feature pass and one matrix product for the Routes that arrive
together) only pays if several Route handlers become runnable in the same iteration of the
server's event loop: a batch could then be scored when the iteration's ready callbacks have
run, at no added latency. This measures that directly, on a server like Route's: grpc.aio on
the same loop, every handler burning ``--handler-us`` of CPU (Route's cost per call), under
``benchmarks/load.py``'s closed-loop client with ``--concurrency`` calls in flight.

Each handler counts itself into the current batch; the first one of an iteration schedules
(``loop.call_soon``) the callback that closes the batch, which runs after every callback that
was already ready, exactly where a batching scorer would run. It prints one JSON object: the
histogram of batch sizes and the share of handlers that found company.

Usage::

    python benchmarks/arrivals.py [--seconds 8] [--concurrency 32] [--handler-us 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import _client, _echo_reply, _free_port, _install_uvloop, _serve


def _counting_server(port: int, ready: Any, handler_us: float, out: Any, seconds: float) -> None:
    _install_uvloop()
    from banditroute.v1 import router_pb2_grpc

    reply = _echo_reply()
    sizes: Counter[int] = Counter()
    pending = 0

    def close_batch() -> None:
        nonlocal pending
        sizes[pending] += 1
        pending = 0

    class Counting(router_pb2_grpc.RouterServicer):
        async def Route(self, request: Any, context: Any) -> Any:
            nonlocal pending
            if pending == 0:
                asyncio.get_running_loop().call_soon(close_batch)
            pending += 1
            end = time.perf_counter() + handler_us * 1e-6
            while time.perf_counter() < end:  # Route's CPU, without awaiting
                pass
            return reply

    async def main() -> None:
        task = asyncio.ensure_future(_serve(Counting(), port, ready))
        await asyncio.sleep(seconds)
        out.put(dict(sizes))
        task.cancel()

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--handler-us", type=float, default=400.0)
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    port, ready, sizes_q, client_q = _free_port(), ctx.Event(), ctx.Queue(), ctx.Queue()
    warmup = 1.0
    server = ctx.Process(target=_counting_server,
                         args=(port, ready, args.handler_us, sizes_q, args.seconds + warmup + 4))
    server.start()
    ready.wait(60)
    client = ctx.Process(target=_client, args=(f"127.0.0.1:{port}", args.seconds,
                                               args.concurrency, 1, warmup, 0, client_q))
    client.start()
    calls = client_q.get(timeout=600)
    client.join(30)
    sizes = {int(k): v for k, v in sizes_q.get(timeout=120).items()}
    server.join(30)
    handlers = sum(k * v for k, v in sizes.items())
    print(json.dumps({
        "benchmark": "arrivals", "concurrency": args.concurrency, "handler_us": args.handler_us,
        "rps": round(calls["rps"], 1), "handlers": handlers,
        "batch_sizes": dict(sorted(sizes.items())),
        "share_of_handlers_in_batches_of_2_or_more": round(
            sum(k * v for k, v in sizes.items() if k > 1) / max(handlers, 1), 4),
        "mean_batch_size": round(handlers / max(sum(sizes.values()), 1), 3),
    }))


if __name__ == "__main__":
    main()
