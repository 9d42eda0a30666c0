"""Tasks for a real Celery worker (prefork pool, Redis broker given in LINEAGE_BROKER)."""
import os
import subprocess
import time

import billiard
from celery import Celery

# The tracer's recipe (contrib/, on PYTHONPATH): pool worker titles name the running task.
import celery_task_titles  # noqa: F401

app = Celery("tasks", broker=os.environ["LINEAGE_BROKER"], backend=os.environ["LINEAGE_BROKER"])
app.conf.worker_prefetch_multiplier = 1


def _sleeper():
    time.sleep(600)


@app.task
def plain(x):
    """Control: starts nothing."""
    return x * 2


@app.task(time_limit=2)
def spawn_and_hang():
    """Starts billiard children, then hits its hard time limit: the main process kills the
    pool worker and the children are orphaned."""
    children = [billiard.Process(target=_sleeper) for _ in range(2)]
    for child in children:
        child.start()
    time.sleep(600)


@app.task
def leave_popen():
    """Returns while the subprocess it started runs on."""
    return subprocess.Popen(["sleep", "600"]).pid


@app.task
def hog():
    """Allocates (and touches) memory until the kernel's OOM killer ends its pool worker:
    the worker runs in a memory cgroup."""
    hoard = []
    while True:
        hoard.append(b"\x01" * (16 << 20))
