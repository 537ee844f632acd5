"""Run a bundle: time every model of its manifest, append results as they finish, resume.

Runs on the board (numpy + onnxruntime + standard library only). A bundle directory holds
``manifest.json``, ``models/*.onnx``, ``run.py`` and this package as ``hwnas_device/``;
``python3 run.py`` inside it measures every entry not yet in ``results.jsonl``.

Interleaving and resume
-----------------------
Pending entries are taken in manifest order in *chunks* (at most ``chunk`` models and
``chunk_mb`` MB of ONNX and weights, their sessions kept in memory). A model whose entry
says ``"weights": "generated"`` is a graph whose weights are external data: the runner
writes that file (seeded random normal values, see weights.py) just before it creates the
session and deletes it after the chunk, so only one chunk's weights are ever on disk. Within a chunk the runner makes
``passes`` passes; each pass gives every model one short burst (see bench.py), so a
model's samples are spread over the whole chunk and slow drift of the machine is shared
by all the models of the chunk instead of biasing one.

The results file is JSON lines, appended with one ``write`` per line:

* ``{"type": "provenance", ...}`` -- once per start: machine, versions, threads, protocol;
* ``{"type": "chunk", "chunk", "at": "start"|"end", "entries", "conditions", "issues"}``
  -- before the first and after the last pass of every chunk: CPU frequency, temperature,
  ``vcgencmd get_throttled`` and load average where readable (see conditions.py); the end
  record's ``issues`` name what makes the chunk's timings suspect (throttling, a CPU
  frequency that fell by more than 5 %), also printed as a ``warning:`` line;
* ``{"type": "pass", "id", "pass", "loops", "samples_ms"}`` -- after every burst;
* ``{"type": "result", "id", "kind", "min_ms", "p10_ms", "median_ms", "iqr_ms", "n",
  "runs"}`` -- after an entry's last pass (fsync'd).

On start the runner drops a half-written last line, skips entries with a result and
continues the others from their recorded passes, so a kill -9 loses at most the burst in
flight and every entry ends with exactly one result. A lock file stops two runners from
writing the same results file; with ``--exit-with-parent`` (what hwnas passes) the runner
also stops when the process that started it dies, and with ``--exit-with-stdin`` when its
standard input reaches end-of-file (the host, or its SSH session, is gone: a daemon thread
reads it). It stops between bursts: the records of a burst it measured (its ``pass`` line and,
after the last pass, the entry's ``result`` line) are written to the results file before
anything is printed, and an entry whose recorded passes are complete but has no result yet
(a runner stopped between the two lines) gets its result from them on the next start, without
another burst. With ``--remove-if-orphaned`` a runner stopped because its host is gone
removes the bundle directory (the temporary copy the host would have removed). hwnas sets
both through the environment (:data:`ENV_EXIT_WITH_STDIN`, :data:`ENV_REMOVE_IF_ORPHANED`;
the second only for the temporary copy on an SSH device).

Every appended line is also printed on stdout, as ``RESULT <json>`` (results) or
``RECORD <json>`` (provenance, passes), so a host that runs the bundle remotely can keep its
own copy; progress is printed as
``PROGRESS <done> <total> <eta_seconds>`` (done counts entries, fractional while an
entry's passes are in flight).

Exit status: 0 done; 2 bad usage or bundle; 3 numpy/onnxruntime missing; 4 cannot write
the results (e.g. disk full); 5 the results file belongs to another machine/threads;
6 some models failed to load or run (the others are kept); 7 only int8 (static QDQ) models
failed, and the probe conv of qdq.py fails too: this onnxruntime cannot run them (the fp32
results are kept); 130 interrupted.

A manifest's ``quantization`` (how the host made its int8 models) is copied into each
provenance record, so a results file carried back alone still says how they were made.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import sys
import threading
import time

from . import bench, conditions, qdq, weights
from .bench import Protocol

MANIFEST = "manifest.json"
RESULTS = "results.jsonl"
SCHEMA = 2  # 2: models may be graphs whose weights the runner generates (weights.py)
SCHEMAS = (1, 2)  # manifests this runner reads
#: what the host sets instead of the flags (the runner's command line stays the caller's):
#: ``--exit-with-stdin`` and ``--remove-if-orphaned``
ENV_EXIT_WITH_STDIN = "HWNAS_EXIT_WITH_STDIN"
ENV_REMOVE_IF_ORPHANED = "HWNAS_REMOVE_IF_ORPHANED"


class RunnerError(Exception):
    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


class HostGone(RunnerError):
    """The host that started the runner is gone (stdout closed, stdin at end-of-file, or the
    parent process exited)."""

    def __init__(self, message: str):
        super().__init__(message, 1)


class HostWatch:
    """Notices that the host is gone: its parent process changed (``parent``), or its
    standard input reached end-of-file (``stdin``; read by a daemon thread)."""

    def __init__(self, parent: bool = False, stdin: bool = False):
        self.ppid = os.getppid() if parent else None
        self.eof = threading.Event()
        if stdin:
            threading.Thread(target=self._read, name="hwnas-stdin", daemon=True).start()

    def _read(self) -> None:
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            pass
        self.eof.set()

    def check(self) -> None:
        """HostGone if the host is gone."""
        if self.eof.is_set():
            raise HostGone("stdin closed (the host or its SSH session is gone); stopping")
        if self.ppid is not None and os.getppid() != self.ppid:  # the host died: re-parented
            raise HostGone("parent process exited; stopping")


# ---- results file --------------------------------------------------------------------------------

def read_records(path: str, repair: bool = False) -> list:
    """The records of a results file. A half-written last line is ignored (and with
    ``repair`` cut off the file, so appends start on a fresh line); unreadable lines are
    skipped."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    end = data.rfind(b"\n") + 1
    if end < len(data) and repair:
        with open(path, "r+b") as f:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
    out = []
    for line in data[:end].splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(rec, dict) and isinstance(rec.get("type"), str):
            out.append(rec)
    return out


class ResultsWriter:
    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, rec: dict, sync: bool = False) -> str:
        line = json.dumps(rec, separators=(",", ":"))
        data = (line + "\n").encode("utf-8")
        try:
            n = os.write(self.fd, data)
            if n != len(data):  # a short write: disk full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            if sync:
                os.fsync(self.fd)
        except OSError as e:
            raise RunnerError(f"cannot write {self.path}: {e.strerror or e}", 4) from None
        return line

    def close(self) -> None:
        os.close(self.fd)


class Lock:
    """An exclusive lock on ``<results>.lock`` (waits up to ``timeout`` seconds)."""

    def __init__(self, path: str, timeout: float = 30.0):
        self.path, self.fd = path + ".lock", None
        try:
            import fcntl
        except ImportError:  # not POSIX: no locking
            return
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise RunnerError(f"another run is writing {path} (lock {self.path})", 2) from None
                time.sleep(0.2)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# ---- manifest ------------------------------------------------------------------------------------

def load_manifest(bundle: str) -> dict:
    path = os.path.join(bundle, MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
    except FileNotFoundError:
        raise RunnerError(f"{path}: no manifest (is this a bundle directory?)") from None
    except ValueError as e:
        raise RunnerError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(m, dict) or m.get("kind") != "hwnas-bundle" or not isinstance(m.get("entries"), list):
        raise RunnerError(f"{path}: not an hwnas bundle manifest")
    if m.get("schema") not in SCHEMAS:
        raise RunnerError(f"{path}: schema {m.get('schema')!r}, this runner reads schema "
                          f"{' and '.join(map(str, SCHEMAS))}")
    ids = set()
    for i, e in enumerate(m["entries"]):
        if not isinstance(e, dict) or not all(k in e for k in ("id", "kind", "file")):
            raise RunnerError(f"{path}: entries[{i}] needs id, kind and file")
        if e["id"] in ids:
            raise RunnerError(f"{path}: entries[{i}]: duplicate id {e['id']}")
        ids.add(e["id"])
        try:
            weights.spec_of(e)
        except weights.WeightsError as ex:
            raise RunnerError(f"{path}: entries[{i}]: {ex}") from None
    return m


# ---- the run -------------------------------------------------------------------------------------

def group_entries(entries, cap: int, cap_mb: float, size_mb) -> list:
    """The chunking rule: consecutive entries, at most ``cap`` models and ``cap_mb`` MB
    (``size_mb(entry)``) a chunk; one entry larger than ``cap_mb`` gets a chunk of its own.
    The host lays sentinels out with the same rule (hwnas.profiling.drift.layout)."""
    out, cur, cur_mb = [], [], 0.0
    for e in entries:
        mb = size_mb(e)
        if cur and (len(cur) >= cap or cur_mb + mb > cap_mb):
            out.append(cur)
            cur, cur_mb = [], 0.0
        cur.append(e)
        cur_mb += mb
    if cur:
        out.append(cur)
    return out


def _chunks(entries: list, bundle: str, p: Protocol) -> list:
    def size_mb(e: dict) -> float:
        try:
            mb = os.path.getsize(os.path.join(bundle, e["file"])) / 2**20
        except OSError:
            mb = 0.0
        return mb + weights.data_bytes(e) / 2**20

    return group_entries(entries, p.chunk, p.chunk_mb, size_mb)


class Reporter:
    def __init__(self, total: int, done: float, watch: HostWatch | None = None):
        self.total, self.start_done = total, done
        self.t0 = time.monotonic()
        self.last = 0.0
        self.watch = watch or HostWatch()

    def emit(self, line: str) -> None:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except BrokenPipeError:  # the host went away: stop measuring
            raise HostGone("stdout closed; stopping") from None

    def progress(self, done: float, force: bool = False) -> None:
        now = time.monotonic()
        self.watch.check()
        if not force and now - self.last < 0.5:
            return
        self.last = now
        rate_done = done - self.start_done
        eta = (now - self.t0) / rate_done * (self.total - done) if rate_done > 0 else -1
        self.emit(f"PROGRESS {done:.2f} {self.total} {eta:.0f}")


def _first_line(ex: Exception) -> str:
    return str(ex).splitlines()[0] if str(ex) else type(ex).__name__


def _load(bundle: str, e: dict, p: Protocol, written: list) -> bench.Model:
    """Write the entry's generated weights (if any) and load its session, warmed up."""
    try:
        path = weights.write_data(bundle, e)
    except OSError as ex:  # disk full: stop, like a results file that cannot be written
        raise RunnerError(f"cannot write the weights of {e['file']}: {ex.strerror or ex}", 4) from None
    if path:
        written.append(e)
    m = bench.Model(os.path.join(bundle, e["file"]), e.get("input_shape"), p.threads,
                    p.graph_optimization)
    m.warm(p.warmup)
    return m


def run(bundle: str, results: str, p: Protocol, log=None, exit_with_parent: bool = False,
        sys_root: str = "/", vcgencmd=conditions.VCGENCMD, exit_with_stdin: bool = False) -> int:
    """Measure every pending entry of ``bundle``; returns the exit status. ``sys_root`` and
    ``vcgencmd`` say where the chunk records read the clock, temperature and throttling;
    ``exit_with_parent`` / ``exit_with_stdin``: stop (:class:`HostGone`) between bursts once
    the host is gone (:class:`HostWatch`)."""
    log = log or (lambda msg: print(msg, flush=True))  # stdout: stderr is for the error line
    p.validate()
    manifest = load_manifest(bundle)
    entries = manifest["entries"]
    lock = Lock(results)
    try:
        records = read_records(results, repair=True)
        prov = bench.provenance(p.threads)
        prov["protocol"] = p.to_dict()
        if isinstance(manifest.get("quantization"), dict):
            prov["quantization"] = manifest["quantization"]
        for old in (r for r in records if r["type"] == "provenance"):
            why = bench.incompatibility(old, prov)
            if why:
                raise RunnerError(f"{results} holds results measured with {why}; use another "
                                  "--results file", 5)
        done = {r["id"] for r in records if r["type"] == "result"}
        samples: dict = {}
        passes: dict = {}
        for r in records:
            if r["type"] == "pass" and r.get("id") not in done:
                samples.setdefault(r["id"], []).extend(r.get("samples_ms", []))
                passes[r["id"]] = passes.get(r["id"], 0) + 1
        runs = {i: 0 for i in passes}
        for r in records:
            if r["type"] == "pass" and r.get("id") in runs:
                runs[r["id"]] += int(r.get("loops", 1)) * len(r.get("samples_ms", []))
        pending = [e for e in entries if e["id"] not in done]
        writer = ResultsWriter(results)
        rep = Reporter(len(entries), len(entries) - len(pending)
                       + sum(min(passes.get(e["id"], 0), p.passes) / p.passes for e in pending),
                       HostWatch(exit_with_parent, exit_with_stdin))
        rep.emit("RECORD " + writer.append(dict(type="provenance", **prov), sync=True))
        # passes complete, result line missing (stopped between the two): no extra burst
        for e in [e for e in pending if passes.get(e["id"], 0) >= p.passes]:
            rep.emit("RESULT " + writer.append(_result(e, samples, runs), sync=True))
            pending.remove(e)
        log(f"{len(entries)} entries, {len(entries) - len(pending)} already measured, "
            f"{len(pending)} to go; threads {p.threads}, {p.passes} passes")
        rep.progress(rep.start_done, force=True)
        failed = []
        finished = len(entries) - len(pending)
        for k, chunk in enumerate(_chunks(pending, bundle, p), 1):
            models, written = {}, []
            try:
                for e in chunk:
                    try:
                        models[e["id"]] = _load(bundle, e, p, written)
                    except RunnerError:
                        raise
                    except Exception as ex:  # noqa: BLE001 - a model onnxruntime cannot load/run
                        failed.append((e["id"], _first_line(ex)))
                todo = [e for e in chunk if e["id"] in models]
                if todo:
                    start = conditions.snapshot(sys_root, vcgencmd)
                    rep.emit("RECORD " + writer.append(
                        {"type": "chunk", "chunk": k, "at": "start", "entries": len(todo),
                         "conditions": start}))
                while todo:
                    for e in todo:
                        i = e["id"]
                        m = models[i]
                        s = m.burst(p)
                        loops = m.last_loops
                        passes[i] = passes.get(i, 0) + 1
                        samples.setdefault(i, []).extend(s)
                        runs[i] = runs.get(i, 0) + loops * len(s)
                        # the file first (pass, then result), then stdout: a host that is
                        # gone (a broken pipe) cannot cost a measured burst or its result
                        out = ["RECORD " + writer.append(
                            {"type": "pass", "id": i, "pass": passes[i], "loops": loops,
                             "samples_ms": [round(x, 6) for x in s]})]
                        if passes[i] >= p.passes:
                            out.append("RESULT " + writer.append(_result(e, samples, runs),
                                                                 sync=True))
                            finished += 1
                        for line in out:
                            rep.emit(line)
                        inflight = sum(passes.get(x["id"], 0) / p.passes for x in todo
                                       if passes.get(x["id"], 0) < p.passes)
                        rep.progress(finished + inflight)
                    todo = [e for e in todo if passes.get(e["id"], 0) < p.passes]
                    if not todo:
                        end = conditions.snapshot(sys_root, vcgencmd)
                        issues = conditions.chunk_issues(start, end)
                        rep.emit("RECORD " + writer.append(
                            {"type": "chunk", "chunk": k, "at": "end", "conditions": end,
                             "issues": issues}))
                        if issues:
                            log(f"warning: chunk {k}: " + "; ".join(issues))
            finally:
                models.clear()
                for e in written:
                    weights.remove_data(bundle, e)
        writer.close()
        rep.progress(finished, force=True)
        if failed:
            raise failure(failed, entries, manifest)
        log(f"done: {finished}/{len(entries)} entries measured")
        return 0
    finally:
        lock.release()


def is_int8(e: dict) -> bool:
    """Whether manifest entry ``e`` is a static QDQ int8 model (hwnas.profiling.precision's key)."""
    return e.get("precision") == "int8" or str(e.get("id", "")).endswith("@int8")


def failure(failed: list, entries: list, manifest: dict) -> RunnerError:
    """The one-line error of models that failed to load or run (``failed``: (id, first line)).
    Only int8 ones, and the QDQ probe conv (qdq.py) fails as well: this onnxruntime cannot run
    static QDQ int8 models (exit 7), said with the way out."""
    int8 = {e["id"] for e in entries if is_int8(e)}
    first = f"{failed[0][0]}: {failed[0][1]}"
    if all(i in int8 for i, _ in failed):
        try:
            pr = qdq.probe(rounds=0)
        except Exception as ex:  # noqa: BLE001 - the probe must not hide the real failure
            pr = {"runs": False, "error": _first_line(ex)}
        if not pr.get("runs"):
            import onnxruntime as ort

            host = (manifest.get("quantization") or {}).get("host_onnxruntime")
            return RunnerError(
                f"its onnxruntime {ort.__version__} cannot run static QDQ int8 models "
                f"({len(failed)} int8 model(s) failed; first: {first[:160]}): profile "
                "--precision fp32, or install onnxruntime "
                + (f">= {host} (the version the host quantized with)" if host
                   else "of the host's version or newer"), 7)
    return RunnerError(f"{len(failed)} model(s) failed to load or run; first: {first}", 6)


def _result(e: dict, samples: dict, runs: dict) -> dict:
    """The result record of entry ``e`` from its samples (taken out of ``samples``/``runs``)."""
    res = {"type": "result", "id": e["id"], "kind": e["kind"]}
    res.update(bench.summarize(samples.pop(e["id"], [])))
    res["runs"] = runs.pop(e["id"], 0)
    return res


def parse_args(argv: list | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="run.py",
        description="Time every ONNX model of this bundle with onnxruntime and append one JSON "
        "line per finished model to the results file. Run it again to resume.")
    ap.add_argument("--check", action="store_true",
                    help="print 'INFO <json>' (machine, versions) and exit")
    ap.add_argument("--bundle", help="bundle directory (default: where run.py is)")
    ap.add_argument("--results", help=f"results file (default: {RESULTS} in the bundle)")
    ap.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: manifest)")
    ap.add_argument("--quick", action="store_true", help="fast, noisy protocol (smoke tests)")
    ap.add_argument("--exit-with-parent", action="store_true",
                    help="stop when the process that started the runner exits (hwnas passes "
                    "this; without it a run started with nohup survives logging out)")
    ap.add_argument("--exit-with-stdin", action="store_true",
                    help="stop when standard input reaches end-of-file (hwnas keeps it open "
                    "while it listens: over SSH, the session is gone)")
    ap.add_argument("--remove-if-orphaned", action="store_true",
                    help="when stopping because the host is gone, remove the bundle directory "
                    "(a temporary copy the host would have removed)")
    ap.add_argument("--sys-root", default="/", metavar="DIR",
                    help="read cpufreq, thermal zones and the load average under DIR instead "
                    "of / (tests, containers)")
    ap.add_argument("--vcgencmd", default=" ".join(conditions.VCGENCMD), metavar="CMD",
                    help="the command that prints throttled=0x... ('' = none; default: "
                    "%(default)s, where installed)")
    for name, typ in (("warmup", int), ("min-repeats", int), ("min-time", float), ("passes", int),
                      ("burst-warmup", int), ("sample-ms", float), ("chunk", int),
                      ("chunk-mb", float)):
        ap.add_argument(f"--{name}", type=typ, help="override the manifest's protocol setting")
    return ap.parse_args(argv)


def protocol_from(manifest: dict | None, args: argparse.Namespace) -> Protocol:
    base = Protocol.from_dict((manifest or {}).get("protocol") or {})
    if args.quick:
        base = Protocol.quick(threads=base.threads, chunk=base.chunk, chunk_mb=base.chunk_mb)
    over = {"warmup": args.warmup, "min_repeats": args.min_repeats, "min_time_s": args.min_time,
            "passes": args.passes, "burst_warmup": args.burst_warmup,
            "sample_ms": args.sample_ms, "chunk": args.chunk,
            "chunk_mb": args.chunk_mb, "threads": args.threads}
    d = base.to_dict()
    d.update({k: v for k, v in over.items() if v is not None})
    return Protocol.from_dict(d)


def main(argv: list | None = None, bundle_dir: str | None = None) -> int:
    def err(msg: str, code: int) -> int:
        try:
            print(f"error: {msg}", file=sys.stderr, flush=True)
        except OSError:  # no one listens any more
            pass
        return code

    try:
        args = parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    missing = bench.missing_dependency()
    if missing:
        return err(missing, 3)
    bundle = os.path.abspath(args.bundle or bundle_dir or os.getcwd())
    if args.check:
        info = bench.provenance(args.threads)
        try:
            info["disk_free_mb"] = round(shutil.disk_usage(bundle).free / 2**20)
        except OSError:
            pass
        info["runner_schema"] = SCHEMA
        try:  # can this onnxruntime run static QDQ int8 models, and are they faster?
            info["int8_qdq"] = qdq.probe(args.threads or 1)
        except Exception as ex:  # noqa: BLE001 - --check reports; it does not fail on this
            info["int8_qdq"] = {"runs": False, "error": f"{type(ex).__name__}: {_first_line(ex)}"}
        info["conditions"] = conditions.snapshot(args.sys_root, args.vcgencmd.split())
        print("INFO " + json.dumps(info), flush=True)
        return 0
    try:
        manifest = load_manifest(bundle)
        p = protocol_from(manifest, args)
        try:
            p.validate()
        except ValueError as e:
            raise RunnerError(f"protocol: {e}") from None
        results = os.path.abspath(args.results) if args.results else os.path.join(bundle, RESULTS)
        return run(bundle, results, p, exit_with_parent=args.exit_with_parent,
                   sys_root=args.sys_root, vcgencmd=args.vcgencmd.split(),
                   exit_with_stdin=args.exit_with_stdin
                   or os.environ.get(ENV_EXIT_WITH_STDIN) == "1")
    except HostGone as e:
        if args.remove_if_orphaned or os.environ.get(ENV_REMOVE_IF_ORPHANED) == "1":
            shutil.rmtree(bundle, ignore_errors=True)
        try:  # no "Exception ignored" noise when Python flushes a closed stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return err(str(e), e.code)
    except RunnerError as e:
        return err(str(e), e.code)
    except KeyboardInterrupt:
        return err("interrupted (finished results are kept; run again to resume)", 130)
    except OSError as e:
        return err(f"{e.filename or 'I/O'}: {e.strerror or e}", 4)
