"""Sends the scenario's tasks to the worker and prints what happened as JSON.

    client.py control    three plain tasks
    client.py incident   a task that hits its hard time limit, then one that leaves a child
    client.py oom        a task that allocates until its pool worker is OOM-killed
"""
import json
import sys

from celery.exceptions import TimeLimitExceeded

from tasks import hog, leave_popen, plain, spawn_and_hang


def main():
    report = {}
    if sys.argv[1] == "control":
        report["results"] = [plain.delay(x).get(timeout=60) for x in range(3)]
    elif sys.argv[1] == "oom":
        result = hog.delay()
        report["hog_id"] = result.id
        try:
            result.get(timeout=90)
            report["hog"] = "returned"
        except Exception as error:  # billiard's WorkerLostError, as the worker died
            report["hog"] = type(error).__name__
    else:
        hang = spawn_and_hang.delay()
        report["hang_id"] = hang.id
        try:
            hang.get(timeout=60)
            report["hang"] = "returned"
        except TimeLimitExceeded:
            report["hang"] = "TimeLimitExceeded"
        popen = leave_popen.delay()
        report["popen_id"] = popen.id
        report["popen_child"] = popen.get(timeout=60)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
