#!/usr/bin/env python3
"""Serving under load: Poisson arrivals at increasing request rates against a running
`tessera serve` (or any OpenAI-compatible server), streamed completions of PROMPT random token
ids and OUTPUT generated tokens each. Per rate: achieved request rate, output tokens/s, p50/p99
time to first token and inter-token latency, mean GPU utilisation (from the server's /metrics
while the rate ran); then the knee, the first rate where latency climbs (p99 TTFT over 3x the
lowest rate's, or the achieved rate under 90% of the offered one). Standard library only.

    serve_load.py --url http://127.0.0.1:8000 --rates 1,2,4,8,16 --duration 30 [--json out.json]
"""
import argparse
import http.client
import json
import random
import statistics
import threading
import time
import urllib.parse


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


class Target:
    def __init__(self, url, key):
        u = urllib.parse.urlparse(url)
        self.https, self.host, self.port = u.scheme == "https", u.hostname, u.port or (443 if u.scheme == "https" else 80)
        self.headers = {"Content-Type": "application/json"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"

    def connect(self, timeout=600):
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=timeout)

    def gpu_utilization(self):
        """Mean tessera_gpu_utilization_ratio over the GPUs, or None without such series."""
        try:
            c = self.connect(10)
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode()
            c.close()
        except OSError:
            return None
        values = [float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("tessera_gpu_utilization_ratio")]
        return sum(values) / len(values) if values else None


def one_request(target, body, result):
    """Streams one completion; records TTFT, the gaps between tokens, e2e and the tokens."""
    start = time.perf_counter()
    try:
        c = target.connect()
        c.request("POST", "/v1/completions", body=body, headers=target.headers)
        resp = c.getresponse()
        if resp.status != 200:
            result.update(status=resp.status)
            resp.read()
            return
        first = last = None
        gaps, tokens, buffer = [], 0, b""
        while True:
            chunk = resp.read1(65536)
            if not chunk:
                break
            buffer += chunk
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                if not event.startswith(b"data: {"):
                    continue
                data = json.loads(event[6:])
                if data.get("usage"):
                    tokens = data["usage"]["completion_tokens"]
                if not data.get("choices") or not data["choices"][0].get("text"):
                    continue
                now = time.perf_counter()
                if first is None:
                    first = now
                else:
                    gaps.append(now - last)
                last = now
        c.close()
        result.update(status=200, ttft=(first or time.perf_counter()) - start, gaps=gaps, tokens=tokens,
                      e2e=time.perf_counter() - start)
    except OSError as e:
        result.update(status=f"error: {e}")


def run_rate(target, rate, duration, prompt_tokens, output_tokens, vocab, rng, model):
    arrivals, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= duration:
            break
        arrivals.append(t)
    results, threads, utilisation = [], [], []
    stop = threading.Event()

    def sample_gpu():
        while not stop.wait(1.0):
            u = target.gpu_utilization()
            if u is not None:
                utilisation.append(u)

    sampler = threading.Thread(target=sample_gpu, daemon=True)
    sampler.start()
    start = time.perf_counter()
    for at in arrivals:
        delay = start + at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        request = {"prompt": [rng.randrange(vocab) for _ in range(prompt_tokens)], "max_tokens": output_tokens,
                   "temperature": 1.0, "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
        if model:
            request["model"] = model
        body = json.dumps(request)
        result = {}
        results.append(result)
        th = threading.Thread(target=one_request, args=(target, body, result))
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    wall = time.perf_counter() - start
    stop.set()
    ok = [r for r in results if r.get("status") == 200]
    gaps = [g for r in ok for g in r["gaps"]]
    return {
        "rate": rate, "requests": len(results), "ok": len(ok),
        "failed": len(results) - len(ok), "achieved_rate": len(ok) / wall if wall else 0.0,
        "output_tokens_per_s": sum(r["tokens"] for r in ok) / wall if wall else 0.0,
        "ttft_p50": percentile([r["ttft"] for r in ok], 50), "ttft_p99": percentile([r["ttft"] for r in ok], 99),
        "itl_p50": percentile(gaps, 50), "itl_p99": percentile(gaps, 99),
        "e2e_p50": percentile([r["e2e"] for r in ok], 50),
        "gpu_utilization": statistics.mean(utilisation) if utilisation else None,
        "errors": sorted({str(r.get("status")) for r in results if r.get("status") != 200}),
    }


def knee(rows):
    base = rows[0]["ttft_p99"]
    for row in rows:
        if row["achieved_rate"] < 0.9 * row["rate"] or row["ttft_p99"] > 3 * base:
            return row["rate"]
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--api-key", default="")
    p.add_argument("--model", default="", help='"model" of each request ("": the base model)')
    p.add_argument("--rates", default="1,2,4,8,16,32", help="requests per second, comma-separated, increasing")
    p.add_argument("--duration", type=float, default=30, help="seconds of arrivals per rate")
    p.add_argument("--prompt-tokens", type=int, default=512)
    p.add_argument("--output-tokens", type=int, default=128)
    p.add_argument("--vocab", type=int, default=32000, help="prompt ids are drawn below this")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the rows here")
    a = p.parse_args()
    target, rng = Target(a.url, a.api_key), random.Random(a.seed)
    rows = []
    print("| req/s offered | achieved | ok/failed | out tok/s | TTFT p50 / p99 s | ITL p50 / p99 ms | GPU util |")
    print("| --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for rate in [float(r) for r in a.rates.split(",")]:
        row = run_rate(target, rate, a.duration, a.prompt_tokens, a.output_tokens, a.vocab, rng, a.model)
        rows.append(row)
        util = "-" if row["gpu_utilization"] is None else f"{100 * row['gpu_utilization']:.0f}%"
        print(f"| {rate:g} | {row['achieved_rate']:.2f} | {row['ok']}/{row['failed']} | {row['output_tokens_per_s']:.0f} | "
              f"{row['ttft_p50']:.3f} / {row['ttft_p99']:.3f} | {1000 * row['itl_p50']:.1f} / {1000 * row['itl_p99']:.1f} | "
              f"{util} |", flush=True)
    k = knee(rows)
    print(f"KNEE {'none up to ' + str(rows[-1]['rate']) if k is None else k} req/s "
          f"(p99 TTFT over 3x the lowest rate's, or under 90% of the offered rate achieved)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": rows, "knee": k, "prompt_tokens": a.prompt_tokens, "output_tokens": a.output_tokens}, f, indent=1)


if __name__ == "__main__":
    main()
