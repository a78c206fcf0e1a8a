"""A worker process for the tests: ``worker_proc.py URL SECRET_FILE KIND
CONCURRENCY DELAY``. Each job reports progress (note: this process's pid),
sleeps DELAY seconds and returns ``{"pid": ..., "data": ...}``."""

import asyncio
import os
import sys

import jobmesh

url, secret_file, kind, concurrency, delay = sys.argv[1:6]
app = jobmesh.Worker(url, secret_file=secret_file, heartbeat=0.5)


@app.task(kind, concurrency=int(concurrency))
async def work(data, ctx):
    ctx.progress(0.0, str(os.getpid()))
    await asyncio.sleep(float(delay))
    return {"pid": os.getpid(), "data": data}


print("worker", os.getpid(), "serving", kind, flush=True)
app.run()
