#!/usr/bin/env python3
"""The soak: `baton serve` (the runtime with its API, task worker and memory indexer)
answers chat completions, OCR and transcription tasks, embeddings and model listings in a
loop for SOAK_MINUTES (default 60). Every SOAK_INTERVAL seconds (default 10) it samples the
server's resident memory, open file descriptors and threads, its workers' memory, the
database's size and how often a worker was restarted; at the end it writes samples.csv and
soak.svg to SOAK_OUT and fails when memory, descriptors or threads keep rising after the
warm-up, or when a request failed. Run by soak.sh, which provides the binaries and models.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

BATON = os.environ["BATON_CLI"]
WORK = os.environ["SOAK_WORK"]
OUT = os.environ["SOAK_OUT"]
MINUTES = float(os.environ.get("SOAK_MINUTES", "60"))
INTERVAL = float(os.environ.get("SOAK_INTERVAL", "10"))
CHAT_MODEL = os.environ.get("SOAK_CHAT_MODEL", "smollm2-135m-instruct")
TOKEN = "soak-" + os.urandom(8).hex()
DATA = os.environ["BATON_DATA_DIR"]


def log(*args):
    print(*args, flush=True)


# ---------------------------------------------------------------- inputs

def make_inputs():
    image = os.path.join(WORK, "text.png")
    subprocess.run(
        ["convert", "-size", "900x220", "xc:white", "-font", "DejaVu-Sans", "-pointsize", "30",
         "-fill", "black", "-annotate", "+24+70", "Invoice 4711 is due on Friday.",
         "-annotate", "+24+150", "Total: 1,284.50 EUR", image],
        check=True)
    speech = os.path.join(WORK, "speech.wav")
    subprocess.run(["espeak-ng", "-w", speech, "Please send the quarterly report by Friday."],
                   check=True)
    return image, speech


# ---------------------------------------------------------------- the server

def start_server():
    env = dict(os.environ, BATON_API_TOKEN=TOKEN)
    proc = subprocess.Popen([BATON, "serve", "--port", "0"], env=env, stdout=subprocess.PIPE,
                            stderr=open(os.path.join(WORK, "serve.err"), "w"), text=True)
    for line in proc.stdout:
        if "listening on" in line:
            url = line.strip().split()[-1]
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, url
    sys.exit(f"soak: the server did not start; see {WORK}/serve.err")


def request(url, path, body=None, timeout=600):
    """One API call, as a well-behaved client makes it: a 429 waits as `Retry-After` says
    and tries again (counted in `throttled`, not as an error)."""
    data = None if body is None else json.dumps(body).encode()
    while True:
        req = urllib.request.Request(url + path, data=data, method="GET" if body is None else "POST",
                                     headers={"Authorization": f"Bearer {TOKEN}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            if e.code != 429:
                raise
            COUNTS["throttled"] += 1
            time.sleep(float(e.headers.get("Retry-After") or 1))


def run_task(url, kind, task_input):
    status, created = request(url, "/tasks", {"kind": kind, "input": task_input})
    task_id = created["tasks"][0]["id"]
    while True:
        _, task = request(url, f"/tasks/{task_id}")
        state = task.get("state") or task.get("task", {}).get("state")
        if state in ("succeeded", "failed", "cancelled", "skipped"):
            return state, task
        time.sleep(0.25)


# ---------------------------------------------------------------- sampling

def status_field(pid, name):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


def children(pid):
    """Every descendant of `pid` (children are listed per thread that started them)."""
    out = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                for child in f.read().split():
                    out.append(int(child))
                    out.extend(children(int(child)))
        except OSError:
            pass
    return out


def process_name(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.path.basename(f.read().split(b"\0")[0].decode(errors="replace"))
    except OSError:
        return "?"


class Sampler(threading.Thread):
    def __init__(self, pid, started):
        super().__init__(daemon=True)
        self.pid, self.started = pid, started
        self.samples, self.workers_seen = [], {}
        self.stop = threading.Event()

    def sample(self, counts):
        kids = children(self.pid)
        for kid in kids:
            self.workers_seen.setdefault(process_name(kid), set()).add(kid)
        db = sum(os.path.getsize(os.path.join(DATA, f)) for f in os.listdir(DATA)
                 if f.startswith("baton.sqlite3"))
        restarts = sum(max(0, len(pids) - 1) for pids in self.workers_seen.values())
        self.samples.append({
            "minute": (time.monotonic() - self.started) / 60,
            "rss_mib": status_field(self.pid, "VmRSS") / 1024,
            "fds": len(os.listdir(f"/proc/{self.pid}/fd")),
            "threads": status_field(self.pid, "Threads"),
            "workers_rss_mib": sum(status_field(k, "VmRSS") for k in kids) / 1024,
            "db_mib": db / 2**20,
            "worker_restarts": restarts,
            **counts,
        })

    def run(self):
        while not self.stop.wait(INTERVAL):
            try:
                self.sample(dict(COUNTS))
            except OSError:
                pass


COUNTS = {"chats": 0, "ocr": 0, "transcriptions": 0, "embeddings": 0, "listings": 0, "errors": 0,
          "throttled": 0}


# ---------------------------------------------------------------- the verdict

def trend(samples, key):
    """(value after warm-up, value at the end, rise in the last half in % of the first)."""
    warm = samples[len(samples) // 5:]
    half = len(warm) // 2
    first = sum(s[key] for s in warm[:half]) / max(1, half)
    last = sum(s[key] for s in warm[half:]) / max(1, len(warm) - half)
    return warm[0][key], samples[-1][key], first, last


def verdict(samples):
    problems = []
    if len(samples) < 8:
        return ["too few samples for a leak check (run longer than 8 intervals)"]
    for key, unit, allowed in [("rss_mib", "MiB", 16.0), ("fds", "", 4), ("threads", "", 4),
                               ("workers_rss_mib", "MiB", 32.0)]:
        start, end, first, last = trend(samples, key)
        # Still rising: the second half of the run (after warm-up) sits above the first by
        # more than the allowance, and the last quarter above the third.
        warm = samples[len(samples) // 5:]
        q = len(warm) // 4
        third = sum(s[key] for s in warm[2 * q:3 * q]) / max(1, q)
        fourth = sum(s[key] for s in warm[3 * q:]) / max(1, len(warm) - 3 * q)
        if last - first > allowed and fourth > third:
            problems.append(f"{key} keeps rising: {first:.1f} → {last:.1f} {unit} "
                            f"(halves after warm-up), last quarter {fourth:.1f} above {third:.1f}")
    if samples[-1]["errors"]:
        problems.append(f"{samples[-1]['errors']} request(s) failed (see {OUT}/errors.log)")
    return problems


# ---------------------------------------------------------------- the plot

def plot(samples, path):
    panels = [("rss_mib", "server RSS (MiB)", "#2563eb"), ("workers_rss_mib", "workers RSS (MiB)", "#7c3aed"),
              ("fds", "open file descriptors", "#059669"), ("threads", "threads", "#d97706"),
              ("db_mib", "database (MiB)", "#dc2626"), ("worker_restarts", "worker restarts", "#475569")]
    w, ph, left, top = 860, 130, 70, 40
    height = top + len(panels) * (ph + 40) + 20
    end = max(s["minute"] for s in samples) or 1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="24" font-size="15" font-weight="bold">Baton soak: '
           f'{end:.0f} min, {samples[-1]["chats"]} chats, {samples[-1]["ocr"]} OCR, '
           f'{samples[-1]["transcriptions"]} transcriptions, {samples[-1]["errors"]} errors</text>']
    for i, (key, title, colour) in enumerate(panels):
        y0 = top + i * (ph + 40) + 20
        values = [s[key] for s in samples]
        lo, hi = min(values), max(values)
        lo, hi = (lo - 1, hi + 1) if hi == lo else (lo - (hi - lo) * 0.1, hi + (hi - lo) * 0.1)
        lo = max(lo, 0.0) if min(values) >= 0 else lo
        pw = w - left - 20
        pts = " ".join(f"{left + s['minute'] / end * pw:.1f},{y0 + ph - (s[key] - lo) / (hi - lo) * ph:.1f}"
                       for s in samples)
        out += [f'<text x="{left}" y="{y0 - 6}" font-weight="bold">{title}: '
                f'{values[0]:.1f} → {values[-1]:.1f}</text>',
                f'<rect x="{left}" y="{y0}" width="{pw}" height="{ph}" fill="#f8fafc" stroke="#cbd5e1"/>',
                f'<text x="{left - 6}" y="{y0 + 10}" text-anchor="end">{hi:.1f}</text>',
                f'<text x="{left - 6}" y="{y0 + ph}" text-anchor="end">{lo:.1f}</text>',
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{pts}"/>']
    out.append(f'<text x="{w - 20}" y="{height - 6}" text-anchor="end">minutes → {end:.0f}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))


# ---------------------------------------------------------------- main

def main():
    os.makedirs(OUT, exist_ok=True)
    image, speech = make_inputs()
    server, url = start_server()
    log(f"soak: {MINUTES:g} min against {url}, sampling every {INTERVAL:g} s")
    started = time.monotonic()
    sampler = Sampler(server.pid, started)
    sampler.sample(dict(COUNTS))
    sampler.start()
    errors = open(os.path.join(OUT, "errors.log"), "w")
    n = 0
    try:
        while time.monotonic() - started < MINUTES * 60:
            n += 1
            steps = [
                ("chats", lambda: request(url, "/chat/completions", {
                    "model": CHAT_MODEL, "max_tokens": 24, "temperature": 0.7,
                    "messages": [{"role": "user", "content": f"Name one fruit ({n})."}]})),
                ("ocr", lambda: run_task(url, "ocr", {"image": image})),
                ("transcriptions", lambda: run_task(url, "transcribe", {"file": speech})),
                ("embeddings", lambda: request(url, "/embeddings", {
                    "model": "all-minilm-l6-v2", "input": [f"soak sentence {n}", "invoice due"]})),
                ("listings", lambda: request(url, "/models")),
            ]
            for name, step in steps:
                try:
                    result = step()
                    if isinstance(result, tuple) and result[0] in ("failed", "cancelled", "skipped"):
                        raise RuntimeError(f"task {result[0]}: {json.dumps(result[1])[:500]}")
                    COUNTS[name] += 1
                except (urllib.error.URLError, RuntimeError, KeyError, TimeoutError) as e:
                    COUNTS["errors"] += 1
                    body = e.read().decode(errors="replace")[:500] if hasattr(e, "read") else ""
                    errors.write(f"{time.monotonic() - started:.0f}s {name}: {e} {body}\n")
                    errors.flush()
            if n % 20 == 0:
                s = sampler.samples[-1]
                log(f"soak: {(time.monotonic() - started) / 60:.1f} min, {dict(COUNTS)}, "
                    f"RSS {s['rss_mib']:.0f} MiB, fds {s['fds']}, threads {s['threads']}")
    finally:
        sampler.stop.set()
        sampler.join()
        sampler.sample(dict(COUNTS))
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    samples = sampler.samples
    with open(os.path.join(OUT, "samples.csv"), "w") as f:
        keys = list(samples[0])
        f.write(",".join(keys) + "\n")
        for s in samples:
            f.write(",".join(f"{s[k]:.3f}" if isinstance(s[k], float) else str(s[k]) for k in keys) + "\n")
    plot(samples, os.path.join(OUT, "soak.svg"))
    first, last = samples[len(samples) // 5], samples[-1]
    log(f"soak: {last['minute']:.1f} min; {dict(COUNTS)}")
    for key in ("rss_mib", "workers_rss_mib", "fds", "threads", "db_mib", "worker_restarts"):
        log(f"  {key}: start {samples[0][key]:.1f}, after warm-up {first[key]:.1f}, end {last[key]:.1f}, "
            f"max {max(s[key] for s in samples):.1f}")
    log(f"  samples: {OUT}/samples.csv, plot: {OUT}/soak.svg")
    problems = verdict(samples)
    for p in problems:
        log(f"soak: FAILED: {p}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
