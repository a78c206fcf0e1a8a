"""Submits built-in kinds and the Python `resize` kind to one cluster and
prints each result:

    python submit_mixed.py ws://127.0.0.1:7700 --secret-file secret
"""

import argparse
import asyncio

import jobmesh

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("url", help="a node's WebSocket URL")
parser.add_argument("--secret-file", help="the cluster secret (default: the development secret)")
args = parser.parse_args()


async def main() -> None:
    async with await jobmesh.AsyncClient.connect(args.url, secret_file=args.secret_file) as client:
        jobs = [
            ("echo", "hello from Python"),
            ("sha256", {"input": "abc", "rounds": 1000}),
            ("resize", {"w": 1920, "h": 1080, "box": 256}),
            ("resize", {"w": 300, "h": 900, "box": 100}),
        ]
        handles = [await client.submit_nowait(kind, data) for kind, data in jobs]
        for (kind, _), handle in zip(jobs, handles):
            result = await handle.result(60)
            print(f"{kind:<7} on {result.worker_node}: {result.value()}")


asyncio.run(main())
