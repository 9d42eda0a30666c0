"""A task that starts a subprocess and a forked child, writes their pids to
$LINEAGE_REPORT_DIR/task.json, and sleeps."""
import json
import os
import subprocess
import time
from datetime import datetime

from airflow import DAG
from airflow.operators.python import PythonOperator


def spawn_children():
    popen = subprocess.Popen(["sleep", "600"])
    forked = os.fork()
    if forked == 0:
        time.sleep(600)
        os._exit(0)
    report = {"task_pid": os.getpid(), "task_ppid": os.getppid(), "children": [popen.pid, forked]}
    path = os.path.join(os.environ["LINEAGE_REPORT_DIR"], "task.json")
    with open(path + ".tmp", "w") as out:
        json.dump(report, out)
    os.rename(path + ".tmp", path)
    time.sleep(600)


with DAG("lineage_spawner", start_date=datetime(2026, 1, 1), schedule=None, catchup=False):
    PythonOperator(task_id="spawn", python_callable=spawn_children)
