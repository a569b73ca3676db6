#!/usr/bin/env python3
"""`tessera plot` end to end: two metrics files (one with eval rows, one resumed with a repeated
step) drawn as one SVG, parsed as XML: one <path> per series with as many points as the file has
steps, in step order, lower values drawn higher; axis labels, a legend naming both runs; a bad
file is one clear error.

    test_plot.py TESSERA_BINARY
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

TESSERA = None
SVG = "{http://www.w3.org/2000/svg}"


def write_rows(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def points(d):
    return [tuple(map(float, p.split(","))) for p in re.findall(r"[-\d.]+,[-\d.]+", d)]


class Plot(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.a = os.path.join(self.dir.name, "run-a", "metrics.jsonl")
        self.b = os.path.join(self.dir.name, "run-b.jsonl")
        os.makedirs(os.path.dirname(self.a))
        rows = []
        for step in range(1, 11):
            rows.append({"step": step, "loss": 5.0 - 0.3 * step, "lr": 1e-3 * min(1, step / 3), "grad_norm": 1.0,
                         "tokens_per_s": 1000 + step, "tflops_per_rank": 0.1, "peak_memory_gib": 0.5, "skipped": False})
            if step % 5 == 0:
                rows.append({"step": step, "eval_loss": 4.9 - 0.3 * step})
        write_rows(self.a, rows)
        # No memory field (an older file); steps 3..4 again after a resume: the later rows win.
        b = [{"step": s, "loss": 6.0 - 0.2 * s, "lr": 2e-3, "tokens_per_s": 900.0} for s in range(1, 5)]
        b += [{"step": s, "loss": 1.0, "lr": 2e-3, "tokens_per_s": 950.0} for s in range(3, 7)]
        write_rows(self.b, b)

    def tearDown(self):
        self.dir.cleanup()

    def plot(self, *args):
        return subprocess.run([TESSERA, "plot", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def test_two_runs_on_one_chart(self):
        out = os.path.join(self.dir.name, "runs.svg")
        done = self.plot(self.a, self.b, "--out", out)
        self.assertEqual(done.returncode, 0, done.stdout)
        root = ET.parse(out).getroot()  # well-formed XML, or this raises
        self.assertEqual(root.tag, SVG + "svg")
        paths = {p.get("data-series"): p for p in root.iter(SVG + "path")}
        self.assertEqual(len(list(root.iter(SVG + "path"))), len(paths), "one path per series")
        self.assertEqual(sorted(paths), sorted([
            "run-a/loss", "run-a/eval_loss", "run-a/lr", "run-a/tokens_per_s", "run-a/peak_memory_gib",
            "run-b/loss", "run-b/lr", "run-b/tokens_per_s"]))
        loss_a = points(paths["run-a/loss"].get("d"))
        self.assertEqual(len(loss_a), 10)
        self.assertEqual(len(points(paths["run-a/eval_loss"].get("d"))), 2)
        self.assertIn("stroke-dasharray", paths["run-a/eval_loss"].attrib)
        xs = [x for x, _ in loss_a]
        self.assertEqual(xs, sorted(xs))
        ys = [y for _, y in loss_a]
        self.assertEqual(ys, sorted(ys), "the loss falls, so it is drawn lower on the page each step (y grows)")
        loss_b = points(paths["run-b/loss"].get("d"))
        self.assertEqual(len(loss_b), 6, "steps 1..6 once each")
        self.assertAlmostEqual(loss_b[2][1], loss_b[5][1], msg="step 3 has the resumed row's value, as step 6")
        self.assertNotEqual(paths["run-a/loss"].get("stroke"), paths["run-b/loss"].get("stroke"))
        texts = [t.text for t in root.iter(SVG + "text")]
        for label in ["step", "loss (nats/token)", "learning rate", "tokens/s", "peak memory (GiB)",
                      "run-a", "run-b", "eval loss (dashed)"]:
            self.assertIn(label, texts)
        self.assertEqual(texts.count("step"), 4, "each panel labels its x axis")

    def test_default_out_and_one_run(self):
        done = self.plot(self.b)
        self.assertEqual(done.returncode, 0, done.stdout)
        root = ET.parse(self.b[:-len(".jsonl")] + ".svg").getroot()
        self.assertEqual(len(list(root.iter(SVG + "path"))), 3)
        self.assertIn("no data", [t.text for t in root.iter(SVG + "text")], "the memory panel has nothing to draw")

    def test_bad_file_is_one_clear_error(self):
        bad = os.path.join(self.dir.name, "bad.jsonl")
        with open(bad, "w") as f:
            f.write('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": nan}\n')
        done = self.plot(bad)
        self.assertNotEqual(done.returncode, 0)
        self.assertEqual(done.stdout.strip(), f"tessera: error: {bad}:2: expected one JSON object per line "
                                              "(a log.metrics_file of tessera train)")
        done = self.plot(os.path.join(self.dir.name, "missing.jsonl"))
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("missing.jsonl: cannot open the metrics file", done.stdout)


if __name__ == "__main__":
    TESSERA = sys.argv.pop(1)
    unittest.main()
