// Audio for the voice tests: a virtual microphone and speaker on the private PulseAudio
// that run.sh starts (a pipe source `vmic` fed through $E2E_MIC_FIFO, a null sink `vspk`),
// speech from espeak-ng, and the word error rate of what was heard. All audio here is raw
// s16le, 16 kHz, mono (32 bytes per millisecond), like crates/baton-cli/tests/voice.rs.
import { execFile, execFileSync, spawn } from "node:child_process";
import { closeSync, constants, mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Worker } from "node:worker_threads";

const BYTES_PER_MS = 32;
const RAW = ["-t", "raw", "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer"];

/** `seconds` of digital silence. */
export function silence(seconds) {
  return Buffer.alloc(Math.round(seconds * 16000) * 2);
}

/**
 * The virtual microphone: writes a steady real-time stream into the pipe source's FIFO,
 * silence unless something is being said. A worker thread writes, so the test's blocking
 * calls (execFileSync) do not starve it; it keeps to the wall clock (at most ~80 ms ahead,
 * and after a stall it catches up instead of leaving a gap).
 *
 * Like a real microphone, what is said while nobody records is lost: PulseAudio reads the
 * FIFO only while a stream records from `vmic`, so once the FIFO has stayed full for
 * `backlogMs` the writer keeps just the last `backlogMs` of audio. A stream that starts
 * recording gets that recent audio first (so speech begun up to `backlogMs` earlier is
 * heard whole), then the live stream; to be sure, wait for the app's stream with
 * `waitForRecording()` before speaking. The FIFO itself keeps what was written in the
 * 128 ms after the last recording stopped (run.sh shrinks it from 64 KiB to 4 KiB).
 */
export class Microphone {
  #worker;
  #fd;
  #said = new Map();
  #next = 0;
  #failure = null;
  #closed = null;

  /** Starts writing into `fifo`; throws at once if nothing reads it (no PulseAudio). */
  static open(fifo = process.env.E2E_MIC_FIFO, { backlogMs = 500 } = {}) {
    if (!fifo) throw new Error("no microphone FIFO: set E2E_MIC_FIFO (tests/e2e/run.sh does)");
    let fd;
    try {
      // Non-blocking: opening a FIFO nobody reads fails (ENXIO) instead of hanging.
      fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (e) {
      throw new Error(`cannot open the microphone FIFO ${fifo} (is PulseAudio's vmic loaded?): ${e.message}`);
    }
    return new Microphone(fd, backlogMs);
  }

  constructor(fd, backlogMs) {
    this.#fd = fd;
    this.#worker = new Worker(`(${writer})()`, {
      eval: true,
      workerData: { fd, chunkBytes: 20 * BYTES_PER_MS, leadMs: 60, backlogMs },
    });
    this.#worker.on("message", (m) => {
      if (m.done !== undefined) this.#settle(m.done);
      else if (m.error) this.#fail(new Error(`microphone: ${m.error}`));
    });
    this.#worker.on("error", (e) => this.#fail(e));
    this.#closed = new Promise((resolve) => this.#worker.once("exit", resolve));
    this.#worker.unref(); // a forgotten microphone does not keep the test process alive
  }

  /**
   * Says raw s16le 16 kHz mono audio after whatever is still being said. Resolves once
   * its last sample is in the FIFO (when nobody records: once it is discarded, up to
   * `backlogMs` later).
   */
  say(audio) {
    if (this.#failure) return Promise.reject(this.#failure);
    if (audio.length % 2) throw new Error("s16le audio needs an even number of bytes");
    const id = this.#next++;
    const done = new Promise((resolve, reject) => this.#said.set(id, { resolve, reject }));
    this.#worker.ref(); // keep the process alive while something is being said
    const bytes = new Uint8Array(audio.buffer, audio.byteOffset, audio.length).slice();
    this.#worker.postMessage({ id, bytes }, [bytes.buffer]);
    return done;
  }

  /** Stops writing and closes the FIFO; what is still being said is cut off (resolved). */
  async close() {
    if (this.#fd === null) return;
    this.#worker.ref(); // wait for the writer to end
    this.#worker.postMessage({ close: true });
    await this.#closed;
    closeSync(this.#fd);
    this.#fd = null;
    for (const id of [...this.#said.keys()]) this.#settle(id);
    this.#failure ??= new Error("the microphone is closed");
  }

  #settle(id) {
    this.#said.get(id)?.resolve();
    this.#said.delete(id);
    if (this.#said.size === 0) this.#worker.unref();
  }

  #fail(error) {
    this.#failure ??= error;
    for (const { reject } of this.#said.values()) reject(this.#failure);
    this.#said.clear();
    this.#worker.unref();
  }
}

// The microphone's writer thread (run from source in a Worker, so it is self-contained).
function writer() {
  const { writeSync } = require("node:fs");
  const { parentPort, workerData } = require("node:worker_threads");
  const { performance } = require("node:perf_hooks");
  const { fd, chunkBytes, leadMs, backlogMs } = workerData;
  const bytesPerMs = 32;
  const started = performance.now();
  const said = []; // { bytes, at }: queued speech, `at` bytes of it already taken
  const pending = []; // chunks made but not in the FIFO yet (a full FIFO: nobody records)
  const ends = []; // { id, end }: stream offsets where each utterance ends
  let made = 0; // bytes of the stream made so far (speech and silence)
  let gone = 0; // bytes of it written into the FIFO or discarded
  let queuedEnd = 0; // where the last queued utterance ends
  let blockedSince = null;
  let timer = null;

  parentPort.on("message", (m) => {
    if (m.close) {
      clearTimeout(timer);
      parentPort.close();
      return;
    }
    const bytes = Buffer.from(m.bytes);
    queuedEnd = Math.max(queuedEnd, made) + bytes.length;
    said.push({ bytes, at: 0 });
    ends.push({ id: m.id, end: queuedEnd });
  });

  // The next chunk of the stream: queued speech, then silence.
  function chunk() {
    const out = Buffer.alloc(chunkBytes);
    let filled = 0;
    while (filled < chunkBytes && said.length) {
      const s = said[0];
      const n = s.bytes.copy(out, filled, s.at, Math.min(s.bytes.length, s.at + chunkBytes - filled));
      s.at += n;
      filled += n;
      if (s.at === s.bytes.length) said.shift();
    }
    return out;
  }

  function tick() {
    const now = performance.now();
    // Keep the stream at wall-clock pace, `leadMs` ahead; after a stall, catch up.
    const due = Math.floor(((now - started + leadMs) * bytesPerMs) / chunkBytes) * chunkBytes;
    while (made < due) {
      pending.push(chunk());
      made += chunkBytes;
    }
    // Chunks are at most PIPE_BUF bytes, so each write is whole or fails with EAGAIN.
    while (pending.length) {
      try {
        writeSync(fd, pending[0]);
      } catch (e) {
        if (e.code === "EAGAIN") break;
        parentPort.postMessage({ error: `writing the FIFO: ${e.message}` });
        parentPort.close();
        return;
      }
      gone += pending.shift().length;
      blockedSince = null;
    }
    if (pending.length) {
      blockedSince ??= now;
      // Nobody has read for a while: drop all but the most recent audio.
      if (now - blockedSince >= backlogMs) {
        const keep = Math.ceil((backlogMs * bytesPerMs) / chunkBytes);
        while (pending.length > keep) gone += pending.shift().length;
      }
    }
    while (ends.length && ends[0].end <= gone) parentPort.postMessage({ done: ends.shift().id });
    timer = setTimeout(tick, 10);
  }
  tick();
}

/** Raw s16le 16 kHz mono speech of `text` from espeak-ng (en-us, 150 words a minute). */
export function speech(text, dir = process.env.E2E_WORK ?? tmpdir()) {
  const work = mkdtempSync(join(dir, "speech-"));
  const wav = join(work, "speech.wav");
  const raw = join(work, "speech.raw");
  execFileSync("espeak-ng", ["-v", "en-us", "-s", "150", "-w", wav, text]);
  execFileSync("sox", [wav, ...RAW, raw]);
  return readFileSync(raw);
}

const run = promisify(execFile);

/** How many streams record from the PulseAudio source `source` now. */
export async function recordingStreams(source = "vmic") {
  const sources = (await run("pactl", ["list", "short", "sources"])).stdout;
  const index = sources.split("\n").find((l) => l.split("\t")[1] === source)?.split("\t")[0];
  if (index === undefined) throw new Error(`no PulseAudio source ${source}`);
  const outputs = (await run("pactl", ["list", "short", "source-outputs"])).stdout;
  return outputs.split("\n").filter((l) => l.split("\t")[1] === index).length;
}

/** Waits until something records from `source` (the app opened the microphone). */
export async function waitForRecording(source = "vmic", timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while ((await recordingStreams(source)) === 0) {
    if (Date.now() > deadline) throw new Error(`nothing recorded from ${source} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Records what the virtual speaker plays (its monitor) into `wav`. Resolves once the
 * recorder is connected; `stop()` ends it after `tailMs` more and resolves to `wav`.
 */
export async function recordSpeaker(wav) {
  const raw = `${wav.replace(/\.wav$/, "")}.raw`;
  const out = openSync(raw, "w");
  // A short fragment: the default one (seconds) loses the end of the recording at exit.
  const parec = spawn(
    "parec",
    ["-d", "vspk.monitor", "--format=s16le", "--rate=16000", "--channels=1", "--latency-msec=20"],
    { stdio: ["ignore", out, "pipe"] },
  );
  closeSync(out);
  let stderr = "";
  parec.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((resolve) => parec.once("exit", (code, signal) => resolve({ code, signal })));
  try {
    await Promise.race([
      waitForRecording("vspk.monitor", 5_000),
      exited.then(({ code }) => Promise.reject(new Error(`parec exited (${code}): ${stderr}`))),
    ]);
  } catch (e) {
    parec.kill();
    throw e;
  }
  const recorded = () => samples(raw);
  return {
    raw,
    /** Waits until the speaker has played `ms` of sound (anything above -46 dBFS). */
    async untilSound(ms = 300, timeoutMs = 60_000) {
      await until(`${ms} ms of sound from the speaker`, () => soundingMs(recorded()) >= ms, timeoutMs);
    },
    /**
     * Ends the recording once it has caught up with the speaker: `silenceMs` of silence
     * recorded after this call, after the last sound. Resolves to `wav`.
     */
    async stop(silenceMs = 800, timeoutMs = 30_000) {
      const from = recorded().length;
      const need = (silenceMs * BYTES_PER_MS) / 2;
      await until(
        `${silenceMs} ms of silence at the end of the recording`,
        () => {
          const s = recorded();
          return s.length - from >= need && trailingSilence(s) >= need;
        },
        timeoutMs,
      );
      parec.kill("SIGINT");
      await exited;
      execFileSync("sox", [...RAW, raw, wav]);
      return wav;
    },
  };
}

/** Polls `check` every 50 ms until it holds; fails after `timeoutMs` naming `what`. */
async function until(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Whether a 20 ms window of 16 kHz samples is above the silence threshold (-46 dBFS). */
function sounding(s, from) {
  let sum = 0;
  const end = Math.min(s.length, from + 320);
  for (let i = from; i < end; i++) sum += s[i] * s[i];
  return end > from && Math.sqrt(sum / (end - from)) / 32768 >= 0.005;
}

/** Milliseconds of sound (20 ms windows above the threshold) in 16 kHz samples. */
function soundingMs(s) {
  let ms = 0;
  for (let at = 0; at + 320 <= s.length; at += 320) if (sounding(s, at)) ms += 20;
  return ms;
}

/** How many samples at the end of `s` are silent (after the last sounding window). */
function trailingSilence(s) {
  let at = s.length - (s.length % 320);
  while (at >= 320 && !sounding(s, at - 320)) at -= 320;
  return s.length - at;
}

/** The s16le samples of a WAV file (its `data` chunk; 16-bit PCM) or of a raw file. */
function samples(file) {
  let bytes = readFileSync(file);
  if (bytes.toString("latin1", 0, 4) === "RIFF") {
    let at = 12;
    while (at + 8 <= bytes.length && bytes.toString("latin1", at, at + 4) !== "data") {
      at += 8 + bytes.readUInt32LE(at + 4) + (bytes.readUInt32LE(at + 4) % 2);
    }
    if (at + 8 > bytes.length) throw new Error(`${file}: a WAV file without a data chunk`);
    bytes = bytes.subarray(at + 8, Math.min(bytes.length, at + 8 + bytes.readUInt32LE(at + 4)));
  }
  if (bytes.byteOffset % 2) bytes = Buffer.from(bytes); // Int16Array needs an aligned start
  return new Int16Array(bytes.buffer, bytes.byteOffset, Math.floor(bytes.length / 2));
}

/** The RMS level of a 16-bit WAV or raw s16le file, 0 (silence) to 1 (full scale). */
export function rms(file) {
  const s = samples(file);
  let sum = 0;
  for (const v of s) sum += v * v;
  return s.length ? Math.sqrt(sum / s.length) / 32768 : 0;
}

/** Whether a WAV or raw s16le file is silent (RMS below `threshold`, about -46 dBFS). */
export function isSilent(file, threshold = 0.005) {
  return rms(file) < threshold;
}

/** Word error rate of `heard` against `expected`: word-level edit distance / words. */
export function wordErrorRate(expected, heard) {
  const words = (s) => s.toLowerCase().split(/[^\p{L}\p{N}']+/u).filter(Boolean);
  const [e, h] = [words(expected), words(heard)];
  let prev = Array.from({ length: h.length + 1 }, (_, j) => j);
  for (let i = 0; i < e.length; i++) {
    const row = [i + 1];
    for (let j = 0; j < h.length; j++) {
      row.push(Math.min(prev[j] + (e[i] === h[j] ? 0 : 1), prev[j + 1] + 1, row[j] + 1));
    }
    prev = row;
  }
  return prev[h.length] / Math.max(e.length, 1);
}

