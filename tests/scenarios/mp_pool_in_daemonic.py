"""A daemonic stdlib multiprocessing.Process calls Pool(): the assert refuses it, unless
PYTHONOPTIMIZE=1 strips the assert. Prints the outcome as JSON."""
import json
import multiprocessing
import os

import setproctitle


def square(x):
    return x * x


def daemonic_worker(queue):
    setproctitle.setproctitle("lineage-scenario: daemonic worker stdlib")
    try:
        with multiprocessing.Pool(2) as pool:
            queue.put(("pool", pool.map(square, range(4))))
    except AssertionError as error:
        queue.put(("refused", str(error)))


def main():
    multiprocessing.set_start_method("fork")
    queue = multiprocessing.Queue()
    worker = multiprocessing.Process(target=daemonic_worker, args=(queue,), daemon=True)
    worker.start()
    outcome, detail = queue.get(timeout=60)
    worker.join(timeout=60)
    print(json.dumps({"parent": os.getpid(), "daemonic": worker.pid, "outcome": outcome, "detail": detail}))


if __name__ == "__main__":
    main()
