"""A Python worker for the `resize` kind: scales an image size to fit a
box, reporting progress. Run it against any node of a cluster:

    python resize_worker.py ws://127.0.0.1:7701 --secret-file secret

Jobs of kind `resize` submitted anywhere in the cluster (CLI, HTTP, Python)
then run here, next to the node's built-in kinds (echo, sleep, sha256).
"""

import argparse
import asyncio
import logging

import jobmesh

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("url", help="a node's WebSocket URL")
parser.add_argument("--secret-file", help="the cluster secret (default: the development secret)")
parser.add_argument("--concurrency", type=int, default=4)
args = parser.parse_args()

app = jobmesh.Worker(args.url, secret_file=args.secret_file)


@app.task("resize", concurrency=args.concurrency)
async def resize(data, ctx: jobmesh.TaskContext):
    """`{"w": 1920, "h": 1080, "box": 256}` -> `{"w": 256, "h": 144}`."""
    try:
        w, h, box = int(data["w"]), int(data["h"]), int(data.get("box", 256))
    except (TypeError, KeyError, ValueError) as err:
        raise jobmesh.BadData(f"expected {{'w', 'h', 'box'}}: {err}")
    ctx.progress(0.5, "computing")
    await asyncio.sleep(0.01)  # stands in for real work
    scale = min(box / w, box / h, 1.0)
    return {"w": round(w * scale), "h": round(h * scale), "worker_attempt": ctx.attempt}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app.run()
