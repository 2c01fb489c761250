#!/usr/bin/env python3
"""The chaos run: the whole pipeline under faults drawn from a seed, then a line-by-line
comparison of what was written with what is in the store.

Run by tests/chaos.sh, which starts the services (etcd as three members, Apache Kafka as three
brokers, OpenSearch behind lc-faultproxy) and writes the daemons' ini files; scripts/soak.sh
runs it longer. Settings come from the environment (CHAOS_*, see Setup). The same seed gives
the same schedule: which faults, in which order, how long, which files rotate how.

Writers append numbered lines to CHAOS_FILES files ("app3 n=17 xxx") at CHAOS_RATE lines a
second each, plus a JSON file whose every 400th line has a value the store's mapping refuses
(the expected dead letters) and a file whose entry comes and goes with the config churn.
Meanwhile one fault at a time is injected, and after each the run measures how long until a
line of every numbered file written after the fault ended is searchable (time to recover),
and counts the warnings and errors each daemon logged about it. At the end it waits for the
pipeline to drain, reads back every document and every dead letter, prints the table, and
exits 1 if a line was lost (other than by copytruncate's nature, counted apart) or indexed
twice, if the dead letters are not exactly the refused lines, if lines did not flow again
within 150 s of a fault, or if a daemon logged more than MAX_LOG_LINES_PER_FAULT lines
about one.
"""
import collections
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from base64 import b64encode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_es import call, every  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
# Rotated files kept per log file: at a file's second rotation its first is deleted (read to
# its end by then: the run waits for lines to flow between faults).
KEEP_ROTATED = 1
# How long after the churn entry was put or removed a line may or may not be shipped.
CHURN_MARGIN_S = (2.0, 1.0)
# Warnings and errors one daemon may log about one fault.
MAX_LOG_LINES_PER_FAULT = 60


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None:
        sys.exit(f"chaos.py: {name} is not set")
    return value


class Setup:
    """What tests/chaos.sh prepared."""

    def __init__(self):
        self.seed = int(env("CHAOS_SEED"))
        self.files = int(env("CHAOS_FILES", "6"))
        self.rate = float(env("CHAOS_RATE", "40"))
        self.duration = float(env("CHAOS_DURATION", "0"))  # 0: each kind of fault once
        self.dir = env("CHAOS_DIR")
        self.bin = env("LC_BIN_DIR")
        self.services = env("SERVICES")
        self.es = env("LC_ES_URL")
        self.proxy = env("CHAOS_PROXY")
        self.etcd = env("LC_ETCD_CLUSTER_URLS").split(",")
        self.brokers = env("LC_KAFKA_CLUSTER_BROKERS")
        self.run = env("LC_RUN")
        self.topic = "chaos"


def say(msg):
    print(msg, flush=True)


# --- processes ------------------------------------------------------------------------------

def usage_of(pid):
    """CPU seconds and peak RSS (MiB) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as f:
            hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK, hwm / 1024


class Daemon:
    """One of ours: started, killed and started again; CPU and peak RSS summed over its lives."""

    def __init__(self, setup, name, argv):
        self.name, self.argv = name, argv
        self.log = os.path.join(setup.dir, f"{name}.log")
        self.proc = None
        self.last = None
        self.cpu, self.rss, self.lives = 0.0, 0.0, 0

    def start(self):
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        with open(os.path.join(os.environ["TEST_TMP"], "spawned.pids"), "a") as f:
            f.write(f"{self.proc.pid}\n")
        self.lives += 1

    def account(self):
        if self.proc and self.proc.poll() is None:
            u = usage_of(self.proc.pid)
            if u:
                self.last = u

    def stop(self, sig):
        """Sends sig and waits for the end; returns the exit code."""
        self.last = None
        self.account()
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=60)
        if self.last:
            self.cpu += self.last[0]
            self.rss = max(self.rss, self.last[1])
        self.proc = None
        return rc

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_size(self):
        try:
            return os.path.getsize(self.log)
        except OSError:
            return 0

    def complaints_since(self, offset):
        return len(self.complaint_lines(offset))

    def complaint_lines(self, offset):
        if not os.path.exists(self.log):
            return []
        with open(self.log, "rb") as f:
            f.seek(offset)
            return [line for line in f if b" WARN " in line or b" ERROR " in line]

    def metrics(self, wanted):
        """Its /metrics lines whose name starts with one of wanted, or why there are none."""
        ini = self.argv[-1]
        with open(ini) as f:
            addr = next((line.split("=", 1)[1].strip() for line in f
                         if line.startswith("http_listen")), None)
        try:
            text = subprocess.run(["curl", "-sf", "-m", "5", f"http://{addr}/metrics"],
                                  capture_output=True, text=True, check=True).stdout
        except subprocess.CalledProcessError as e:
            return [f"/metrics on {addr}: curl exit {e.returncode}"]
        return [line for line in text.splitlines() if line.startswith(wanted)]


class Service:
    """A service process of scripts/services.sh (kafka0, etcd1, es), found by its pid file."""

    def __init__(self, setup, name, group):
        self.setup, self.name, self.group = setup, name, group

    def pid(self):
        with open(os.path.join(self.setup.run, f"{self.name}.pid")) as f:
            return int(f.read())

    def signal(self, sig):
        os.kill(self.pid(), sig)

    def kill9(self):
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        while True:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        return
            except OSError:
                return
            time.sleep(0.05)

    def start_again(self):
        subprocess.run([self.setup.services, "start", self.group], check=True,
                       stdout=subprocess.DEVNULL)


# --- writers --------------------------------------------------------------------------------

class Writer(threading.Thread):
    """Appends lines to every file at the rate, round robin; rotates files when asked."""

    def __init__(self, setup, rng):
        super().__init__(daemon=True)
        self.setup, self.rng = setup, rng
        self.names = [f"app{i}" for i in range(setup.files)] + ["json", "churn"]
        self.paths = {n: os.path.join(setup.dir, "logs", f"{n}.log") for n in self.names}
        os.makedirs(os.path.join(setup.dir, "logs"), exist_ok=True)
        self.fds = {n: self.open(n) for n in self.names}
        self.n = {n: 0 for n in self.names}
        self.written = {n: [] for n in self.names}
        self.churn_times = []
        self.between_copy_and_truncate = set()
        self.rotations = collections.Counter()
        self.requests = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def open(self, name):
        return os.open(self.paths[name], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    @staticmethod
    def line(name, n):
        if name == "json":
            code = '"oops"' if n % 400 == 200 else "200"
            return f'{{"file":"json","n":{n},"chaos_code":{code}}}'
        return f"{name} n={n} " + "x" * (n % 61)

    def dead_letters(self):
        return {m for m in self.written["json"] if '"oops"' in m}

    def rotate(self, names, how):
        """Asks for NAMES to be rotated (rename or copytruncate) and waits until they are."""
        done = threading.Event()
        with self.lock:
            self.requests.append((names, how, done))
        done.wait(30)

    def write(self, name):
        self.n[name] += 1
        msg = self.line(name, self.n[name])
        os.write(self.fds[name], (msg + "\n").encode())
        self.written[name].append(msg)
        if name == "churn":
            self.churn_times.append(time.time())
        return msg

    def do_rotate(self, name, how):
        path = self.paths[name]
        # Older rotated files move up; the oldest beyond KEEP_ROTATED is deleted.
        for i in range(KEEP_ROTATED, 0, -1):
            if os.path.exists(f"{path}.{i}"):
                if i == KEEP_ROTATED:
                    os.unlink(f"{path}.{i}")
                    self.rotations["deleted"] += 1
                else:
                    os.rename(f"{path}.{i}", f"{path}.{i + 1}")
        if how == "rename":
            os.rename(path, f"{path}.1")
            os.close(self.fds[name])
            self.fds[name] = self.open(name)
        else:
            shutil.copyfile(path, f"{path}.1")
            # An application goes on writing between the copy and the truncation: those lines
            # are in neither file, lost to any shipper by the nature of copytruncate.
            for _ in range(self.rng.randrange(3)):
                self.between_copy_and_truncate.add(self.write(name))
            os.truncate(path, 0)
        self.rotations[how] += 1

    def run(self):
        period, next_tick = 1 / self.setup.rate, time.time()
        while not self.stopping.is_set():
            with self.lock:
                requests, self.requests = self.requests, []
            for names, how, done in requests:
                for name in names:
                    self.do_rotate(name, how)
                done.set()
            for name in self.names:
                self.write(name)
            next_tick += period
            time.sleep(max(0, next_tick - time.time()))

    def marks(self):
        """The next three lines of each numbered file (one may be lost by copytruncate)."""
        return {f"app{i}": [f"app{i} n={self.n[f'app{i}'] + k}" for k in (1, 2, 3)]
                for i in range(self.setup.files)}


# --- the run --------------------------------------------------------------------------------

class Chaos:
    def __init__(self, setup):
        self.s = setup
        self.rng = random.Random(setup.seed)
        self.writer = Writer(setup, random.Random(setup.seed + 1))
        b = setup.bin
        ini = lambda name: os.path.join(setup.dir, f"{name}.ini")  # noqa: E731
        self.agent = Daemon(setup, "agent", [f"{b}/log-agent", "-c", ini("agent")])
        self.transfers = [Daemon(setup, f"transfer{i}", [f"{b}/log-transfer", "-c", ini(f"transfer{i}")])
                          for i in (1, 2, 3)]
        self.proxy = Daemon(setup, "proxy", [f"{b}/lc-faultproxy", setup.proxy, setup.es])
        self.daemons = [self.agent, *self.transfers]
        self.brokers = [Service(setup, f"kafka{i}", "kafka-cluster") for i in range(3)]
        self.etcd_members = [Service(setup, f"etcd{i}", "etcd-cluster") for i in range(3)]
        self.store = Service(setup, "es", "es")
        self.results = []
        self.churn_events = []  # (time, churn entry configured?) for each valid put
        self.churn_stop = threading.Event()
        self.faults = {
            "agent kill -9 (files rotated while it is down)": self.agent_kill,
            "transfer kill -9": self.transfer_kill,
            "kill -9 of the broker leading the busiest partition": self.leader_kill,
            "broker SIGSTOP": self.broker_stop,
            "etcd member kill -9": self.etcd_kill,
            "store SIGSTOP": self.store_stop,
            "store unreachable": self.store_unreachable,
            "429 and 500 bursts": self.bursts,
            "rotation storm (rename and copytruncate)": self.rotation_storm,
            "Kafka away (every broker SIGSTOP; files rotated meanwhile)": self.kafka_away,
            "a transfer joins the group and leaves": self.join_and_leave,
        }

    # --- etcd

    def etcd_put(self, key, value):
        body = {"key": b64encode(key.encode()).decode(), "value": b64encode(value.encode()).decode()}
        for url in self.s.etcd:
            try:
                return call(f"{url}/v3/kv/put", body, timeout=3)
            except OSError:
                continue
        raise RuntimeError(f"no etcd member took {key}")

    def entries(self, churn):
        logs = os.path.join(self.s.dir, "logs")
        out = [{"path": f"{logs}/app*.log", "topic": self.s.topic, "start": "beginning"},
               {"path": f"{logs}/json.log", "topic": self.s.topic, "json": True, "start": "beginning"}]
        if churn:
            out.append({"path": f"{logs}/churn.log", "topic": self.s.topic})
        return out

    def churn(self):
        """Every few seconds the churn entry comes or goes; now and then an invalid value."""
        rng, configured = random.Random(self.s.seed + 2), True
        # Configured since the first put, and applied: lines flow.
        self.churn_events.append((time.time(), True))
        while not self.churn_stop.wait(rng.uniform(3, 7)):
            if rng.random() < 0.25:
                bad = rng.choice(['[{"path": 42, "topic": "chaos"}]', '{"not": "a list"',
                                  '[{"path": "/x/*.log", "topic": "", "poll": 1}]'])
                self.etcd_put("collect_log_conf", bad)
                continue
            configured = not configured
            self.etcd_put("collect_log_conf", json.dumps(self.entries(configured)))
            self.churn_events.append((time.time(), configured))

    # --- measuring

    def flowing(self, marks):
        """Whether, for every numbered file, one of its marked lines is searchable."""
        filters = {name: {"bool": {"should": [{"match_phrase": {"message": m}} for m in lines],
                                   "minimum_should_match": 1}}
                   for name, lines in marks.items()}
        body = {"size": 0, "aggs": {"files": {"filters": {"filters": filters}}}}
        try:
            buckets = call(f"{self.s.es}/{self.s.topic}-*/_search", body, timeout=5)[
                "aggregations"]["files"]["buckets"]
        except (OSError, KeyError):
            return False
        return all(b["doc_count"] > 0 for b in buckets.values())

    def recovery(self, deadline_s=150):
        """Seconds until a line of every numbered file written after now is searchable, or
        None: every partition flows again, not just some."""
        start, marks = time.time(), self.writer.marks()
        while time.time() - start < deadline_s:
            if self.flowing(marks):
                return time.time() - start
            time.sleep(0.25)
        return None

    def explain_stall(self, sizes):
        """What the daemons said and counted since a fault after which lines did not flow, for
        a failure seen only in a CI log."""
        marks = self.writer.marks()
        say(f"    stalled: files whose next lines are not searchable within 60 s: "
            f"{[n for n in marks if not self.flowing({n: marks[n]})]}")
        time.sleep(60)
        say(f"    still stalled: {[n for n in marks if not self.flowing({n: marks[n]})]}")
        wanted = ("logcollect_agent_kafka_queue_depth", "logcollect_agent_all_files",
                  "logcollect_agent_errors", "logcollect_transfer_committed_offset",
                  "logcollect_transfer_consumer_lag", "logcollect_transfer_errors",
                  "logcollect_transfer_partitions_assigned")
        for d in self.daemons:
            if not d.alive():
                say(f"    {d.name}: not running")
                continue
            for line in d.metrics(wanted)[:40]:
                say(f"    {d.name} metric: {line}")
            for line in d.complaint_lines(sizes[d.name])[-20:]:
                say(f"    {d.name} log: {line.decode(errors='replace').rstrip()}")

    def check_alive(self):
        for d in self.daemons[:3]:
            if d.proc is not None and not d.alive():
                raise RuntimeError(f"{d.name} exited on its own ({d.proc.returncode}); see {d.log}")

    # --- faults: each returns what it did, once the fault is over

    def rotate_some(self):
        """Rotates half the numbered files, some by rename, the others by copytruncate."""
        names = self.rng.sample([f"app{i}" for i in range(self.s.files)], max(2, self.s.files // 2))
        half = len(names) // 2
        self.writer.rotate(names[:half], "rename")
        self.writer.rotate(names[half:], "copytruncate")
        return f"{', '.join(sorted(names[:half]))} renamed, {', '.join(sorted(names[half:]))} copytruncated"

    def agent_kill(self):
        self.agent.stop(signal.SIGKILL)
        time.sleep(self.rng.uniform(1, 4))
        rotated = self.rotate_some()
        time.sleep(self.rng.uniform(2, 5))
        self.agent.start()
        return f"down with {rotated}"

    def transfer_kill(self):
        t = self.rng.choice(self.transfers[:2])
        t.stop(signal.SIGKILL)
        time.sleep(self.rng.uniform(2, 8))
        t.start()
        return t.name

    def leader_kill(self):
        out = subprocess.run([f"{self.s.bin}/lc-kafka", "partitions", self.s.brokers, self.s.topic],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        busiest = max((json.loads(x) for x in out.splitlines()), key=lambda p: p["records"])
        broker = self.brokers[busiest["leader"] - 1]
        broker.kill9()
        time.sleep(self.rng.uniform(3, 10))
        broker.start_again()
        return f"{broker.name}, leader of partition {busiest['partition']}"

    def broker_stop(self):
        broker, secs = self.rng.choice(self.brokers), self.rng.uniform(10, 30)
        broker.signal(signal.SIGSTOP)
        time.sleep(secs)
        broker.signal(signal.SIGCONT)
        return f"{broker.name} for {secs:.0f} s"

    def etcd_kill(self):
        member = self.rng.choice(self.etcd_members)
        member.kill9()
        time.sleep(self.rng.uniform(3, 8))
        member.start_again()
        return member.name

    def store_stop(self):
        secs = self.rng.uniform(10, 30)
        self.store.signal(signal.SIGSTOP)
        time.sleep(secs)
        self.store.signal(signal.SIGCONT)
        return f"{secs:.0f} s"

    def store_unreachable(self):
        self.proxy.stop(signal.SIGKILL)
        time.sleep(30)
        self.proxy.start()
        return "30 s, connections refused"

    def bursts(self):
        secs = self.rng.uniform(8, 15)
        call(f"http://{self.s.proxy}/_fault", {"item_429": 0.3, "status_500": 0.2, "seed": self.s.seed}, "PUT")
        time.sleep(secs)
        call(f"http://{self.s.proxy}/_fault", {"item_429": 0, "status_500": 0}, "PUT")
        return f"{secs:.0f} s of 30% 429 items and 20% 500 answers"

    def rotation_storm(self):
        names = [f"app{i}" for i in range(self.s.files)]
        self.rng.shuffle(names)
        half = len(names) // 2
        self.writer.rotate(names[:half], "rename")
        self.writer.rotate(names[half:], "copytruncate")
        return f"renamed {', '.join(sorted(names[:half]))}; copytruncate {', '.join(sorted(names[half:]))}"

    def kafka_away(self):
        secs = self.rng.uniform(8, 15)
        for b in self.brokers:
            b.signal(signal.SIGSTOP)
        time.sleep(secs / 2)
        rotated = self.rotate_some()
        time.sleep(secs / 2)
        for b in self.brokers:
            b.signal(signal.SIGCONT)
        return f"{secs:.0f} s, {rotated} meanwhile"

    def join_and_leave(self):
        t = self.transfers[2]
        t.start()
        time.sleep(self.rng.uniform(10, 20))
        rc = t.stop(signal.SIGTERM)
        if rc != 0:
            raise RuntimeError(f"{t.name} exited {rc} on SIGTERM")
        return "transfer3 for a while"

    def plan(self):
        kinds = list(self.faults)
        if self.s.duration <= 0:
            self.rng.shuffle(kinds)
            return kinds
        return None  # drawn one by one until the duration has passed

    # --- the run

    def run(self):
        s = self.s
        say(f"chaos: seed {s.seed}, {s.files} files at {s.rate:g} lines/s each, "
            f"{'each fault once' if s.duration <= 0 else f'{s.duration:g} s of faults'}")
        self.etcd_put("collect_log_conf", json.dumps(self.entries(True)))
        self.proxy.start()
        self.agent.start()
        for t in self.transfers[:2]:
            t.start()
        self.writer.start()
        first = self.recovery(120)
        if first is None:
            raise RuntimeError("no line was searchable 120 s after the start")
        say(f"    first lines searchable after {first:.1f} s")
        # The churn entry is in the first config, but the agent may apply it seconds after it
        # starts, and then starts at the end of the file (its default): in a loaded run whose
        # first lines were searchable after 19.5 s, the 40 lines of a window counted from that
        # put were never read. Its lines count from here, lines flowing.
        churn = threading.Thread(target=self.churn, daemon=True)
        churn.start()
        plan, started = self.plan(), time.time()
        while True:
            if plan is not None:
                if not plan:
                    break
                kind = plan.pop(0)
            else:
                if time.time() - started >= s.duration:
                    break
                kind = self.rng.choice(list(self.faults))
            time.sleep(self.rng.uniform(2, 6))
            sizes = {d.name: d.log_size() for d in self.daemons}
            t0 = time.time()
            what = self.faults[kind]()
            took = time.time() - t0
            recovered = self.recovery()
            if recovered is None:
                self.explain_stall(sizes)
            self.check_alive()
            complaints = {d.name: d.complaints_since(sizes[d.name]) for d in self.daemons}
            self.results.append({"kind": kind, "what": what, "secs": took, "recovery": recovered,
                                 "log_lines": complaints})
            say(f"    {kind}: {what}; {took:.1f} s, lines flowing "
                + (f"{recovered:.1f} s after" if recovered is not None else "NOT again within 150 s")
                + f"; warnings+errors logged: {complaints}")
            if recovered is None:
                break
        self.churn_stop.set()
        churn.join()
        time.sleep(1)
        self.writer.stopping.set()
        self.writer.join()
        return self.drain_and_compare()

    def all_documents(self):
        return [h["_source"].get("message") for h in every(self.s.es, f"{self.s.topic}-*", ["message"])]

    def dead_letters(self, expected):
        out = subprocess.run([f"{self.s.bin}/lc-kafka", "consume", self.s.brokers, f"{self.s.topic}.dlq",
                              str(expected), "30"], capture_output=True, text=True)
        return [json.loads(x)["value"] for x in out.stdout.splitlines()]

    def expected_churn(self):
        """Churn lines written while their entry was surely configured."""
        expected, events = set(), self.churn_events + [(float("inf"), None)]
        for (t0, on), (t1, _) in zip(events, events[1:]):
            if not on:
                continue
            lo, hi = t0 + CHURN_MARGIN_S[0], t1 - CHURN_MARGIN_S[1]
            expected.update(m for m, t in zip(self.writer.written["churn"], self.writer.churn_times)
                            if lo <= t <= hi)
        return expected

    def drain_and_compare(self):
        w = self.writer
        gone = w.between_copy_and_truncate
        letters_expected = w.dead_letters()
        must = {m for n in w.names if n != "churn" for m in w.written[n]} - gone - letters_expected
        must |= self.expected_churn()
        start = time.time()
        while True:
            try:
                have = call(f"{self.s.es}/{self.s.topic}-*/_count", timeout=10)["count"]
            except OSError:
                have = 0
            # The count may include lines not required (the churn file's): look closer.
            if have >= len(must) and not must - set(self.all_documents()):
                break
            if time.time() - start > 180:
                break
            time.sleep(2)
        drained = time.time() - start
        for d in self.daemons:
            if d.alive():
                d.stop(signal.SIGTERM)
        docs = self.all_documents()
        counts = collections.Counter(docs)
        present = set(counts)
        duplicated = {m: c for m, c in counts.items() if c > 1}
        lost = sorted(must - present)
        letters = self.dead_letters(len(letters_expected))
        letter_set = set(letters)
        unexpected_letters = letter_set - letters_expected
        missing_letters = letters_expected - letter_set
        wrongly_indexed = letters_expected & present
        written = sum(len(v) for v in w.written.values())
        churn_unconfigured = len(w.written["churn"]) - len(self.expected_churn())
        kinds = collections.Counter(r["kind"] for r in self.results)
        rows = [
            ("lines written", written),
            ("  of them the churn file's, written while its entry was not surely configured",
             churn_unconfigured),
            ("  of them lost by copytruncate (written between the copy and the truncation)", len(gone)),
            ("documents indexed", len(docs)),
            ("lost", len(lost)),
            ("duplicated", len(duplicated)),
            ("dead-lettered (all expected: values the mapping refuses)", len(letter_set)),
            ("  dead letters written more than once", len(letters) - len(letter_set)),
            ("  unexpected dead letters", len(unexpected_letters)),
            ("rotations (rename, copytruncate; rotated files deleted)",
             f"{w.rotations['rename']}, {w.rotations['copytruncate']}; {w.rotations['deleted']}"),
            ("config changes (valid puts of the churn entry)", len(self.churn_events) - 1),
            ("time to drain after the writers stopped (s)", f"{drained:.1f}"),
        ]
        say("\n    | what | figure |\n    |---|---|")
        for k, v in rows:
            say(f"    | {k} | {v} |")
        say("\n    | fault | injected | longest time to recover (s) |\n    |---|---|---|")
        for kind, n in kinds.items():
            rec = [r["recovery"] for r in self.results if r["kind"] == kind]
            say(f"    | {kind} | {n} | {max(x for x in rec if x is not None):.1f} |" if any(
                x is not None for x in rec) else f"    | {kind} | {n} | never |")
        say("\n    | daemon | lives | CPU s | peak RSS MiB |\n    |---|---|---|---|")
        for d in self.daemons:
            say(f"    | {d.name} | {d.lives} | {d.cpu:.1f} | {d.rss:.0f} |")
        problems = []
        if lost:
            problems.append(f"{len(lost)} lines lost, e.g. {lost[:5]}")
        if duplicated:
            problems.append(f"{len(duplicated)} lines indexed twice, e.g. {list(duplicated.items())[:5]}")
        if unexpected_letters or missing_letters or wrongly_indexed:
            problems.append(f"dead letters: {len(unexpected_letters)} unexpected, {len(missing_letters)} missing, "
                            f"{len(wrongly_indexed)} refused ones indexed")
        if any(r["recovery"] is None for r in self.results):
            problems.append("lines did not flow again after a fault")
        noisy = [(r["kind"], d, n) for r in self.results for d, n in r["log_lines"].items()
                 if n > MAX_LOG_LINES_PER_FAULT]
        if noisy:
            problems.append(f"more than {MAX_LOG_LINES_PER_FAULT} warnings and errors about one fault: {noisy}")
        with open(os.path.join(self.s.dir, "result.json"), "w") as f:
            json.dump({"rows": rows, "faults": self.results, "problems": problems}, f, indent=1)
        for p in problems:
            say(f"    FAIL: {p}")
        return not problems


def main():
    chaos = Chaos(Setup())
    try:
        ok = chaos.run()
    finally:
        for d in chaos.daemons + [chaos.proxy]:
            if d.alive():
                d.proc.kill()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
