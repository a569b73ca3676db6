#!/usr/bin/env python3
"""Serving under load: Poisson arrivals at increasing request rates against a running
`tessera serve` (or any OpenAI-compatible server), streamed completions of PROMPT random token
ids and OUTPUT generated tokens each. Per rate: the rate the Poisson draw actually sent, the
achieved (completed) request rate, output tokens/s, p50/p99 time to first token and inter-token
latency, mean GPU utilisation (from the server's /metrics while the rate ran); then the knee, the
first rate where latency climbs (p99 TTFT over 3x the lowest rate's, the achieved rate under 90%
of the rate sent, or requests left unfinished).
Standard library only.

Each rate waits at most --drain seconds after its last arrival: requests still streaming then
are cut (their connections closed, so the server cancels them) and counted as unfinished, so a
rate whose backlog cannot drain does not hold up the next. The requests are sent from --workers
processes, so that parsing the streams at high rates does not make the client the bottleneck.
A burst of --warmup requests at once comes first, so that one-time work (the CUDA graph capture of
each batch size) is not measured in the lowest rate, the knee's baseline.

    serve_load.py --url http://127.0.0.1:8000 --rates 8,32,64,128,256 --duration 10 [--json out.json]
"""
import argparse
import concurrent.futures
import http.client
import json
import random
import socket
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
    """Streams one completion; records TTFT, the gaps between tokens, e2e and the tokens received.
    result["connection"] lets the caller cut it."""
    start = time.perf_counter()
    result["received"] = 0
    try:
        c = target.connect()
        result["connection"] = c
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
                result["received"] += 1
                if first is None:
                    first = now
                else:
                    gaps.append(now - last)
                last = now
        c.close()
        if result.get("cut"):
            result.update(status="unfinished")
            return
        done = time.perf_counter()
        result.update(status=200, ttft=(first or done) - start, gaps=gaps, tokens=tokens, e2e=done - start, done=done)
    except (OSError, http.client.HTTPException, ValueError) as e:
        result.update(status="unfinished" if result.get("cut") else f"error: {e}")


def send(url, key, model, arrivals, start, deadline, prompt_tokens, output_tokens, vocab, seed):
    """One worker process: a request per arrival (seconds after `start`, a perf_counter time),
    each on its own thread; at `deadline` the requests still running are cut. Returns the results."""
    target, rng = Target(url, key), random.Random(seed)
    results, threads = [], []
    for at in arrivals:
        delay = start + at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        request = {"prompt": [rng.randrange(vocab) for _ in range(prompt_tokens)], "max_tokens": output_tokens,
                   "temperature": 1.0, "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
        if model:
            request["model"] = model
        result = {}
        results.append(result)
        th = threading.Thread(target=one_request, args=(target, json.dumps(request), result), daemon=True)
        th.start()
        threads.append(th)
    for th in threads:
        th.join(max(0.0, deadline - time.perf_counter()))
    for r, th in zip(results, threads):
        if th.is_alive():
            r["cut"] = True
            try:
                r["connection"].sock.shutdown(socket.SHUT_RDWR)
            except (KeyError, AttributeError, OSError):
                pass
    for th in threads:
        th.join(5)
    for r in results:
        r.pop("connection", None)
        if "status" not in r:
            r["status"] = "unfinished"
    return results


def run_rate(target, args, rate, index):
    rng = random.Random(args.seed * 1000 + index)
    arrivals, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= args.duration:
            break
        arrivals.append(t)
    utilisation = []
    stop = threading.Event()

    def sample_gpu():
        while not stop.wait(1.0):
            u = target.gpu_utilization()
            if u is not None:
                utilisation.append(u)

    sampler = threading.Thread(target=sample_gpu, daemon=True)
    sampler.start()
    workers = max(1, min(args.workers, len(arrivals)))
    start = time.perf_counter() + 1.0  # the workers' processes start meanwhile
    deadline = start + args.duration + args.drain
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        jobs = [pool.submit(send, args.url, args.api_key, args.model, arrivals[k::workers], start, deadline,
                            args.prompt_tokens, args.output_tokens, args.vocab, rng.randrange(1 << 30))
                for k in range(workers)]
        results = [r for j in jobs for r in j.result()]
    wall = time.perf_counter() - start
    stop.set()
    ok = [r for r in results if r.get("status") == 200]
    gaps = [g for r in ok for g in r["gaps"]]
    # Completions per second over the span of completions (at a sustainable rate it matches the
    # arrivals' span; a backlog stretches it), and tokens per second from the first arrival on.
    done = sorted(r["done"] for r in ok)
    achieved = (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 and done[-1] > done[0] else 0.0
    return {
        "rate": rate, "sent_rate": len(arrivals) / args.duration, "requests": len(results), "ok": len(ok),
        "unfinished": sum(r.get("status") == "unfinished" for r in results),
        "failed": sum(r.get("status") not in (200, "unfinished") for r in results),
        "achieved_rate": achieved,
        "output_tokens_per_s": sum(r.get("received", 0) for r in results) / wall if wall else 0.0,
        "ttft_p50": percentile([r["ttft"] for r in ok], 50), "ttft_p99": percentile([r["ttft"] for r in ok], 99),
        "itl_p50": percentile(gaps, 50), "itl_p99": percentile(gaps, 99),
        "e2e_p50": percentile([r["e2e"] for r in ok], 50),
        "gpu_utilization": statistics.mean(utilisation) if utilisation else None,
        "errors": sorted({str(r.get("status")) for r in results if r.get("status") not in (200, "unfinished")}),
    }


def warm_up(args):
    """args.warmup requests at once, 16 new tokens each: the server meets every batch size up to it."""
    start = time.perf_counter()
    results = send(args.url, args.api_key, args.model, [0.0] * args.warmup, start, start + 120, args.prompt_tokens,
                   16, args.vocab, args.seed)
    failed = sorted({str(r["status"]) for r in results if r["status"] != 200})
    if failed:
        raise SystemExit(f"warm-up: requests failed: {', '.join(failed)}")


def knee(rows):
    """The first rate where latency climbs. A Poisson draw sends more or fewer requests than
    offered (108 in 8 s at 16 req/s), so the achieved rate is held against the rate sent."""
    base = rows[0]["ttft_p99"]
    for row in rows:
        if row["achieved_rate"] < 0.9 * row["sent_rate"] or row["ttft_p99"] > 3 * base or row["unfinished"]:
            return row["rate"]
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--api-key", default="")
    p.add_argument("--model", default="", help='"model" of each request ("": the base model)')
    p.add_argument("--rates", default="8,32,64,128,256", help="requests per second, comma-separated, increasing")
    p.add_argument("--duration", type=float, default=10, help="seconds of arrivals per rate")
    p.add_argument("--drain", type=float, default=20, help="seconds a rate waits after its last arrival")
    p.add_argument("--workers", type=int, default=8, help="client processes")
    p.add_argument("--warmup", type=int, default=64, help="requests sent at once before the first rate (0: none)")
    p.add_argument("--prompt-tokens", type=int, default=512)
    p.add_argument("--output-tokens", type=int, default=128)
    p.add_argument("--vocab", type=int, default=32000, help="prompt ids are drawn below this")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the rows here")
    a = p.parse_args()
    target = Target(a.url, a.api_key)
    if a.warmup > 0:
        warm_up(a)
    rows = []
    print("| req/s offered | sent | achieved | ok/unfinished/failed | out tok/s | TTFT p50 / p99 s | ITL p50 / p99 ms | GPU util |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for index, rate in enumerate(float(r) for r in a.rates.split(",")):
        row = run_rate(target, a, rate, index)
        rows.append(row)
        util = "-" if row["gpu_utilization"] is None else f"{100 * row['gpu_utilization']:.0f}%"
        print(f"| {rate:g} | {row['sent_rate']:.2f} | {row['achieved_rate']:.2f} | {row['ok']}/{row['unfinished']}/{row['failed']} | "
              f"{row['output_tokens_per_s']:.0f} | "
              f"{row['ttft_p50']:.3f} / {row['ttft_p99']:.3f} | {1000 * row['itl_p50']:.1f} / {1000 * row['itl_p99']:.1f} | "
              f"{util} |", flush=True)
        if row["errors"]:
            print(f"(failures at {rate:g} req/s: {', '.join(row['errors'])})", flush=True)
    k = knee(rows)
    print(f"KNEE {'none up to ' + str(rows[-1]['rate']) if k is None else k} req/s "
          f"(p99 TTFT over 3x the lowest rate's, under 90% of the rate sent achieved, or requests unfinished)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": rows, "knee": k, "prompt_tokens": a.prompt_tokens, "output_tokens": a.output_tokens}, f, indent=1)


if __name__ == "__main__":
    main()
