#!/usr/bin/env python3
"""SIGKILLs the desktop app at random moments while its embedded task worker runs a
200-task workflow, CYCLES times, then lets it finish and checks the database: every task
succeeded exactly once (its success is its last change), every attempt is recorded, every
attempt lost to a kill says so, and SQLite's integrity check is ok. Run by app-kills.sh,
which provides the display, window manager and D-Bus session; the app's data dir and
config come from BATON_DATA_DIR / BATON_CONFIG."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

APP, CLI, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
CYCLES = int(os.environ.get("CYCLES", "50"))
TASKS = 200
DB = os.path.join(os.environ["BATON_DATA_DIR"], "baton.sqlite3")


def chain_template(n, sleep_ms):
    lines = [
        "name: chains", "version: 1", "description: ten chains of noop steps",
        "retry: { attempts: 100, backoff_secs: 0 }", "steps:",
    ]
    for i in range(n):
        lines.append(f"  - id: s{i}\n    kind: noop\n    input: {{ sleep_ms: {sleep_ms} }}")
        if i >= 10:
            lines.append(f"    after: [s{i - 10}]")
    return "\n".join(lines) + "\n"


def query(sql, *args):
    con = sqlite3.connect(f"file:{DB}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def wait_for(condition, what, timeout=120.0):
    """Polls `condition` (a database query) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"app-kills: timed out waiting for {what}")
        time.sleep(0.02)


def starts():
    return query("SELECT COUNT(*) FROM task_events WHERE to_state = 'running'")[0][0]


def unfinished(run):
    return query(
        "SELECT COUNT(*) FROM tasks WHERE run_id = ? AND state NOT IN "
        "('succeeded', 'failed', 'cancelled', 'skipped')", run)[0][0]


def start_app(log):
    return subprocess.Popen([APP], stdout=log, stderr=subprocess.STDOUT)


def main():
    template = os.path.join(WORK, "chains.yaml")
    with open(template, "w") as f:
        f.write(chain_template(TASKS, 120))
    subprocess.run([CLI, "templates", "import", template], check=True, stdout=subprocess.DEVNULL)
    out = subprocess.run([CLI, "--json", "templates", "run", "chains"], check=True,
                         capture_output=True, text=True).stdout
    run = json.loads(out)["run"]
    rng = random.Random(int(os.environ.get("SEED", "16")))
    killed_mid_run = 0
    with open(os.path.join(WORK, "app.log"), "ab") as log:
        for cycle in range(CYCLES):
            before = starts()
            app = start_app(log)
            # Until this start has begun something (or the run is done), then a random while:
            # mid-task, mid-commit, or while the next one starts.
            wait_for(lambda: starts() > before or unfinished(run) == 0 or app.poll() is not None,
                     f"cycle {cycle}: the app to start a task")
            if app.poll() is not None:
                sys.exit(f"app-kills: the app exited by itself (status {app.returncode}); see {WORK}/app.log")
            time.sleep(rng.uniform(0, 0.4))
            if unfinished(run):
                killed_mid_run += 1
            app.send_signal(signal.SIGKILL)
            app.wait()
        # The run finishes after the last restart.
        app = start_app(log)
        wait_for(lambda: unfinished(run) == 0, "the run to finish after the last restart", 300)
        app.terminate()
        app.wait()

    tasks = query("SELECT id, step, state, attempts FROM tasks WHERE run_id = ?", run)
    assert len(tasks) == TASKS, len(tasks)
    lost = 0
    for task_id, step, state, attempts in tasks:
        assert state == "succeeded", f"{step} ended {state}"
        events = query("SELECT to_state, reason FROM task_events WHERE task_id = ? ORDER BY id", task_id)
        succeeded = [i for i, (to, _) in enumerate(events) if to == "succeeded"]
        assert succeeded == [len(events) - 1], f"{step}: succeeded once, last: {events}"
        running = sum(1 for to, _ in events if to == "running")
        assert running == attempts, f"{step}: {running} starts for {attempts} attempts"
        for (to, _), (after, reason) in zip(events, events[1:]):
            if to == "running" and after != "succeeded":
                assert after == "ready" and ("restarted during attempt" in reason
                                             or "stopped during attempt" in reason), reason
                lost += 1
    integrity = query("PRAGMA integrity_check")[0][0]
    assert integrity == "ok", integrity
    print(f"app-kills: {CYCLES} SIGKILLs of the app ({killed_mid_run} while the run was unfinished): "
          f"{TASKS}/{TASKS} tasks succeeded once each, {lost} lost attempts recorded and retried, "
          f"integrity_check ok")
    assert killed_mid_run >= CYCLES // 2, f"only {killed_mid_run} kills landed mid-run"
    assert lost > 0, "no kill interrupted a task"


main()
