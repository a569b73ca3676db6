#!/usr/bin/env python3
"""`tessera train` with log.metrics_port, end to end, with Python's urllib as the scraper.

A tiny CPU job on two ranks is scraped while it trains: /health answers ok, /metrics is
Prometheus text whose step figures equal the log.metrics_file row of the same step (loss, lr,
grad norm, tokens/s, TFLOP/s), with both ranks' memory and time split, the tokens and checkpoints
counted; a port already in use is one clear error before step 1.

    test_metrics_port.py TESSERA_BINARY SOURCE_DIR MPIEXEC
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

TESSERA = SOURCE = MPIEXEC = None
STEPS, SEQ, MICRO, RANKS = 40, 128, 4, 2
SAMPLE = re.compile(r'^([a-z_]+)(\{[^}]*\})? (\S+)$')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_args(work, port, steps=STEPS):
    return [TESSERA, "train", os.path.join(SOURCE, "configs", "tiny-cpu.yaml"),
            "--set", f"data.train={os.path.join(SOURCE, 'README.md')}", "--set", "train.device=cpu",
            "--set", f"train.steps={steps}", "--set", f"checkpoint.dir={os.path.join(work, 'ckpt')}",
            "--set", "checkpoint.every_steps=10", "--set", "log.every_steps=1",
            "--set", f"log.metrics_file={os.path.join(work, 'metrics.jsonl')}", "--set", f"log.metrics_port={port}"]


def parse(text):
    """Prometheus text -> {name or name{labels}: value}; asserts every line is well-formed."""
    values = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ ", line), line
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        values[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return values


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


class MetricsPort(unittest.TestCase):
    def test_scraped_while_training(self):
        with tempfile.TemporaryDirectory() as work:
            port = free_port()
            args = [MPIEXEC, "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", str(RANKS),
                    *job_args(work, port)]
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            health, scrapes = None, []
            deadline = time.time() + 300
            while proc.poll() is None and time.time() < deadline:
                try:
                    if health is None:
                        health = get(port, "/health")
                    status, ctype, body = get(port, "/metrics")
                    self.assertEqual(status, 200)
                    self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
                    scrapes.append(parse(body))
                except (urllib.error.URLError, ConnectionError):
                    pass  # not listening yet, or already gone
                time.sleep(0.02)
            out, _ = proc.communicate(timeout=60)
            self.assertEqual(proc.returncode, 0, out)
            self.assertEqual(health, (200, "application/json", '{"status":"ok"}'))

            rows = {}
            with open(os.path.join(work, "metrics.jsonl")) as f:
                for line in f:
                    row = json.loads(line)
                    rows.setdefault(row["step"], {}).update(row)
            self.assertEqual(sorted(rows), list(range(1, STEPS + 1)))

            during = [s for s in scrapes if "tessera_train_step" in s]
            steps = sorted({int(s["tessera_train_step"]) for s in during})
            print(f"scraped {len(during)} times at {len(steps)} steps of {STEPS}", file=sys.stderr)
            self.assertGreaterEqual(len(steps), 3, f"scraped only steps {steps}")
            self.assertLess(steps[0], STEPS, "no scrape while the job trained")
            tokens_per_step = RANKS * MICRO * SEQ
            for s in during:
                step = int(s["tessera_train_step"])
                row = rows[step]
                self.assertEqual(s["tessera_train_total_steps"], STEPS)
                self.assertEqual(s["tessera_train_loss"], row["loss"], f"step {step}")
                self.assertEqual(s["tessera_train_learning_rate"], row["lr"], f"step {step}")
                self.assertEqual(s["tessera_train_grad_norm"], row["grad_norm"], f"step {step}")
                self.assertEqual(s["tessera_train_tokens_per_second"], row["tokens_per_s"], f"step {step}")
                self.assertEqual(s["tessera_train_tflops_per_rank"], row["tflops_per_rank"], f"step {step}")
                self.assertEqual(s["tessera_train_tokens_total"], step * tokens_per_step)
                self.assertEqual(s["tessera_train_skipped_steps_total"], 0)
                self.assertGreater(s["tessera_train_step_seconds"], 0)
                # every 10 steps, written after the step's figures: at step 10 the scrape may come first
                saved = int(s["tessera_train_checkpoints_total"])
                self.assertIn(saved, {step // 10, (step - 1) // 10}, f"step {step}")
                if saved:
                    self.assertEqual(s["tessera_train_last_checkpoint_step"], saved * 10)
                    self.assertGreaterEqual(s["tessera_train_last_checkpoint_age_seconds"], 0)
                if 'tessera_train_memory_peak_bytes{rank="1"}' not in s:
                    continue  # the first gather had not happened yet
                for rank in range(RANKS):
                    r = f'{{rank="{rank}"}}'
                    self.assertGreater(s["tessera_train_memory_peak_bytes" + r], 0)
                    self.assertGreaterEqual(s["tessera_train_memory_peak_bytes" + r], s["tessera_train_memory_bytes" + r])
                    self.assertEqual(s["tessera_train_nvme_read_bytes_total" + r], 0)  # no NVMe offload here
                    phases = {p: s[f'tessera_train_phase_seconds_total{{rank="{rank}",phase="{p}"}}']
                              for p in ["compute", "collectives", "optimizer", "checkpoint", "data"]}
                    self.assertGreater(phases["compute"], 0)
                    self.assertGreater(phases["data"], 0)
                    self.assertTrue(all(v >= 0 for v in phases.values()), phases)
                    if rank == 0:  # its step times are those of the log: tokens / tokens_per_s
                        split = sum(phases.values()) - phases["checkpoint"]
                        seconds = [tokens_per_step / rows[k]["tokens_per_s"] for k in range(1, step + 1)]
                        # gathered at this step or, if the scrape came between the log and the gather, the one before
                        self.assertLessEqual(split, sum(seconds) * (1 + 1e-9), f"step {step}")
                        self.assertGreaterEqual(split, sum(seconds[:-1]) * (1 - 1e-9), f"step {step}")
                # Rank 0's peak is the log's peak memory of a step done (gathered at a log step).
                peak = s['tessera_train_memory_peak_bytes{rank="0"}'] / 2**30
                self.assertTrue(any(abs(rows[k]["peak_memory_gib"] - peak) < 1e-3 for k in range(1, step + 1)), peak)
            last = scrapes[-1]
            self.assertGreater(last['tessera_train_phase_seconds_total{rank="0",phase="checkpoint"}'], 0,
                               "a scrape after the step-10 checkpoint's gather saw its time")

            # The same run as a picture.
            svg = os.path.join(work, "run.svg")
            plot = subprocess.run([TESSERA, "plot", os.path.join(work, "metrics.jsonl"), "--out", svg],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            self.assertEqual(plot.returncode, 0, plot.stdout)
            paths = list(ET.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}path"))
            self.assertEqual(len(paths), 4)  # loss, lr, tokens/s, memory

    def test_port_in_use_is_one_clear_error_before_step_1(self):
        with tempfile.TemporaryDirectory() as work, socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            done = subprocess.run(job_args(work, port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=120)
            self.assertNotEqual(done.returncode, 0)
            errors = [l for l in done.stdout.splitlines() if "error" in l]
            self.assertEqual(errors, [f"tessera: error: log.metrics_port: cannot listen on 127.0.0.1:{port}: "
                                      "the port is already in use"], done.stdout)
            self.assertNotIn("step 1/", done.stdout)
            self.assertFalse(os.path.exists(os.path.join(work, "metrics.jsonl")))

    def test_bad_port_is_a_config_error(self):
        with tempfile.TemporaryDirectory() as work:
            done = subprocess.run(job_args(work, 70000), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=120)
            self.assertNotEqual(done.returncode, 0)
            self.assertIn("log.metrics_port", done.stdout)
            self.assertIn("got 70000", done.stdout)


if __name__ == "__main__":
    TESSERA, SOURCE, MPIEXEC = sys.argv[1:4]
    del sys.argv[1:4]
    unittest.main()
