#!/usr/bin/env python3
"""`tessera serve` end to end, with Python's standard library as the HTTP client.

A tiny model is trained for two steps on the CPU (a Tessera checkpoint with the byte tokenizer),
served on a loopback port, and exercised like a client would: completions and chat, whole and
streamed; auth failures; malformed and fuzzed bodies (the server answers the next request); 64
parallel greedy requests equal to the one-at-a-time answers; a client hanging up mid-stream
(its request is cancelled); metrics that count what was sent; TLS; SIGTERM drain.

    test_serve.py TESSERA_BINARY SOURCE_DIR
"""
import concurrent.futures
import http.client
import json
import os
import random
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

TESSERA = SOURCE = WORK = None
KEY = "sk-test-0123456789"
SERVER = None  # the main server, shared by the tests of Serve
STATUSES = {}  # status -> count of API requests this client made to SERVER (for the metrics test)
STATUS_LOCK = threading.Lock()


def run(*args, timeout=120):
    done = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}")
    return done.stdout


class Server:
    """A `tessera serve` process on a free loopback port; its log is kept for the asserts."""

    def __init__(self, *extra, tls=None):
        self.tls = tls
        self.log = []
        args = [TESSERA, "serve", "--model", MODEL, "--port", "0", "--device", "cpu", "--api-key", KEY,
                "--set", "engine.chat_template=chatml", "--set", "max_body_bytes=65536", *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.port = None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"listening on https?://[^ ]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
            if "serve: ready" in line:
                threading.Thread(target=self._drain_log, daemon=True).start()
                return
        self.proc.kill()
        raise RuntimeError("tessera serve did not become ready:\n" + "".join(self.log))

    def _drain_log(self):
        for line in self.proc.stdout:
            self.log.append(line)

    def connection(self, timeout=60):
        if self.tls:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=self.tls)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, key=KEY, raw=False):
        conn = self.connection()
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = body if raw or body is None else json.dumps(body)
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode()
        conn.close()
        if self is SERVER and path.startswith("/v1/"):
            with STATUS_LOCK:
                STATUSES[resp.status] = STATUSES.get(resp.status, 0) + 1
        return resp.status, text

    def json(self, path, body, **kw):
        status, text = self.request("POST", path, body, **kw)
        return status, json.loads(text)

    def stream(self, path, body):
        """The data: payloads of a streamed reply."""
        status, text = self.request("POST", path, dict(body, stream=True))
        assert status == 200, text
        return [line[6:] for line in text.split("\n") if line.startswith("data: ")]

    def metrics(self):
        status, text = self.request("GET", "/metrics", key=None)
        assert status == 200
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def greedy(prompt, max_tokens=12):
    return {"model": "tiny", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}


def setUpModule():
    global WORK, MODEL, SERVER
    WORK = tempfile.mkdtemp(prefix="tessera-serve-test-")
    # Two training steps: a real checkpoint folder (config, weights, byte tokenizer) in seconds.
    run(TESSERA, "train", os.path.join(SOURCE, "configs/tiny-cpu.yaml"), "--set", "train.steps=2",
        "--set", "train.device=cpu", "--set", "data.seq_len=64", "--set", "train.micro_batch_size=1",
        "--set", "model.init.max_position_embeddings=8192", "--set", f"checkpoint.dir={WORK}/run",
        "--set", "checkpoint.every_steps=0", "--set", "log.metrics_file=",
        "--set", f"data.train={os.path.join(SOURCE, 'README.md')}")
    MODEL = f"{WORK}/run/step-2"
    SERVER = Server("--set", "served_model_name=tiny")


def tearDownModule():
    if SERVER:
        SERVER.stop()
    shutil.rmtree(WORK, ignore_errors=True)


class Serve(unittest.TestCase):
    def test_completion(self):
        status, r = SERVER.json("/v1/completions", greedy("Tessera trains", 12))
        self.assertEqual(status, 200, r)
        self.assertEqual(r["object"], "text_completion")
        self.assertTrue(r["id"].startswith("cmpl-"))
        self.assertEqual(r["model"], "tiny")
        choice = r["choices"][0]
        self.assertIn(choice["finish_reason"], ("length", "stop"))
        self.assertIsInstance(choice["text"], str)
        usage = r["usage"]
        self.assertEqual(usage["prompt_tokens"], len("Tessera trains") + 1)  # bytes and BOS
        self.assertEqual(usage["total_tokens"], usage["prompt_tokens"] + usage["completion_tokens"])
        if choice["finish_reason"] == "length":
            self.assertEqual(usage["completion_tokens"], 12)
        # Greedy is deterministic, and a stream spells the same text.
        self.assertEqual(SERVER.json("/v1/completions", greedy("Tessera trains", 12))[1]["choices"][0]["text"], choice["text"])
        events = SERVER.stream("/v1/completions", greedy("Tessera trains", 12))
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertEqual("".join(c["choices"][0]["text"] for c in chunks), choice["text"])
        self.assertEqual(chunks[-1]["choices"][0]["finish_reason"], choice["finish_reason"])

    def test_long_streams_end_whole(self):
        # Tokens that add no text (a byte of a longer UTF-8 character) once ended the chunked reply.
        body = {"model": "tiny", "prompt": "long", "max_tokens": 200, "temperature": 1.0, "seed": 5,  # sampled: any bytes
                "ignore_eos": True}
        whole = SERVER.json("/v1/completions", body)[1]["choices"][0]["text"]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            streams = list(pool.map(lambda _: SERVER.stream("/v1/completions", body), range(4)))
        for events in streams:
            self.assertEqual(events[-1], "[DONE]")
            self.assertEqual("".join(json.loads(e)["choices"][0].get("text", "") for e in events[:-1]), whole)

    def test_chat(self):
        body = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
                "max_tokens": 10, "temperature": 0}
        status, r = SERVER.json("/v1/chat/completions", body)
        self.assertEqual(status, 200, r)
        self.assertEqual(r["object"], "chat.completion")
        self.assertEqual(r["choices"][0]["message"]["role"], "assistant")
        text = r["choices"][0]["message"]["content"]
        events = SERVER.stream("/v1/chat/completions", dict(body, stream_options={"include_usage": True}))
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertEqual(chunks[0]["choices"][0]["delta"]["role"], "assistant")
        self.assertTrue(all(c["object"] == "chat.completion.chunk" for c in chunks))
        streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        self.assertEqual(streamed, text)
        self.assertEqual(chunks[-1]["usage"], r["usage"])

    def test_sampling_fields_and_logprobs(self):
        body = {"prompt": "abc", "max_tokens": 5, "temperature": 0.8, "top_p": 0.9, "top_k": 20, "seed": 11,
                "presence_penalty": 0.5, "frequency_penalty": 0.5, "logprobs": 2, "stop": ["\n\n"], "n": 1}
        status, a = SERVER.json("/v1/completions", body)
        self.assertEqual(status, 200, a)
        self.assertEqual(SERVER.json("/v1/completions", body)[1]["choices"][0]["text"], a["choices"][0]["text"])  # seeded
        lp = a["choices"][0]["logprobs"]
        self.assertEqual(len(lp["tokens"]), a["usage"]["completion_tokens"])
        self.assertTrue(all(v <= 0 for v in lp["token_logprobs"]))
        # top_logprobs maps token text to logprob: two byte tokens that decode to the same text
        # (an incomplete UTF-8 sequence) share one entry, so 1 or 2 entries.
        self.assertTrue(all(1 <= len(t) <= 2 for t in lp["top_logprobs"]))

    def test_models_and_health(self):
        status, text = SERVER.request("GET", "/v1/models")
        self.assertEqual(status, 200)
        self.assertEqual([m["id"] for m in json.loads(text)["data"]], ["tiny"])
        self.assertEqual(SERVER.request("GET", "/health", key=None), (200, '{"status":"ok"}'))

    def test_errors(self):
        cases = [
            ("POST", "/v1/completions", greedy("x"), None, 401, "invalid_api_key"),
            ("POST", "/v1/completions", greedy("x"), "sk-wrong", 401, "invalid_api_key"),
            ("POST", "/v1/completions", '{"prompt": "x",', KEY, 400, "invalid_json"),
            ("POST", "/v1/completions", {"prompt": "x", "temperature": -1}, KEY, 400, "invalid_value"),
            ("POST", "/v1/completions", {"prompt": "x", "model": "gpt-4"}, KEY, 404, "model_not_found"),
            ("POST", "/v1/completions", {"prompt": "x" * 70000}, KEY, 413, "body_too_large"),
            ("POST", "/v1/completions", {"prompt": "x" * 9000}, KEY, 400, "context_length_exceeded"),
            ("GET", "/v1/nothing", None, KEY, 404, "not_found"),
        ]
        for method, path, body, key, status, code in cases:
            with self.subTest(code=code, status=status):
                got, text = SERVER.request(method, path, body, key=key, raw=isinstance(body, str))
                self.assertEqual(got, status, text)
                error = json.loads(text)["error"]
                self.assertEqual(error["code"], code)
                self.assertIsInstance(error["message"], str)
                self.assertNotIn("sk-wrong", "".join(SERVER.log))  # keys are never logged

    def test_fuzzed_bodies_leave_the_server_answering(self):
        rng = random.Random(5)
        valid = json.dumps({"prompt": "fuzz", "max_tokens": 3, "temperature": 0, "stop": ["a"], "seed": 1})
        for i in range(60):
            data = bytearray(valid.encode())
            for _ in range(rng.randint(1, 6)):
                op = rng.randint(0, 2)
                at = rng.randrange(len(data))
                if op == 0:
                    data[at] = rng.randrange(256)
                elif op == 1:
                    del data[at:at + rng.randint(1, 8)]
                else:
                    data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            for path in ("/v1/completions", "/v1/chat/completions"):
                status, text = SERVER.request("POST", path, bytes(data), raw=True)
                self.assertIn(status, (200, 400, 404), text)
                if status != 200:
                    self.assertIn("error", json.loads(text))
        self.assertEqual(SERVER.json("/v1/completions", greedy("after the fuzz", 4))[0], 200)

    def test_parallel_requests_equal_one_at_a_time(self):
        prompts = [f"request {i}: " + "abcdefgh"[: i % 8] for i in range(64)]
        alone = [SERVER.json("/v1/completions", greedy(p, 8))[1]["choices"][0]["text"] for p in prompts]
        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            together = list(pool.map(lambda p: SERVER.json("/v1/completions", greedy(p, 8)), prompts))
        self.assertTrue(all(status == 200 for status, _ in together))
        self.assertEqual([r["choices"][0]["text"] for _, r in together], alone)

    def test_client_hanging_up_is_cancelled(self):
        before = SERVER.metrics().get('tessera_requests_finished_total{reason="cancelled"}', 0)
        conn = SERVER.connection()
        # 8,000 sampled tokens, never stopped by an end-of-text one: far more than the engine makes
        # before the hang-up is seen.
        body = {"prompt": "long", "max_tokens": 8000, "ignore_eos": True, "stream": True}
        conn.request("POST", "/v1/completions", body=json.dumps(body),
                     headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        resp.read1(64)  # the stream has begun
        conn.sock.shutdown(2)
        conn.close()
        with STATUS_LOCK:
            STATUSES[499] = STATUSES.get(499, 0) + 1
        for _ in range(100):
            now = SERVER.metrics().get('tessera_requests_finished_total{reason="cancelled"}', 0)
            if now > before and any("status=499" in line for line in SERVER.log):  # counted, then logged
                break
            time.sleep(0.1)
        self.assertEqual(now, before + 1)
        self.assertTrue(any("status=499" in line for line in SERVER.log))

    def test_z_metrics_count_the_requests(self):  # runs last in this class (alphabetical order)
        with STATUS_LOCK:
            expected = dict(STATUSES)
        counted = lambda m: {s: m.get(f'tessera_requests_total{{status="{s}"}}', 0) for s in expected}
        # A request is counted as its reply's last bytes go out, and the engine's gauges move at its
        # next step: on a loaded machine the client is a little ahead, so they are read until they
        # settle (at most 10 s).
        for _ in range(100):
            m = SERVER.metrics()
            if counted(m) == expected and m["tessera_requests_running"] == 0:  # a cancel lands at the next step
                break
            time.sleep(0.1)
        self.assertEqual(counted(m), expected)
        self.assertGreater(m["tessera_generation_tokens_total"], 0)
        self.assertEqual(m["tessera_time_to_first_token_seconds_count"] > 0, True)
        for name in ("tessera_inter_token_latency_seconds_count", "tessera_e2e_request_latency_seconds_count",
                     "tessera_requests_running", "tessera_requests_waiting", "tessera_kv_cache_usage_ratio",
                     "tessera_prompt_tokens_total"):
            self.assertIn(name, m)
        self.assertEqual(m["tessera_requests_running"], 0)


class Operations(unittest.TestCase):
    def test_tls(self):
        cert, key = f"{WORK}/cert.pem", f"{WORK}/key.pem"
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")
        context = ssl.create_default_context(cafile=cert)
        server = Server("--set", "served_model_name=tiny", "--set", f"tls_cert={cert}", "--set", f"tls_key={key}", tls=context)
        try:
            status, r = server.json("/v1/completions", greedy("over TLS", 4))
            self.assertEqual(status, 200, r)
            self.assertTrue(any("listening on https://" in line for line in server.log))
            plain = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)  # no TLS: refused
            with self.assertRaises((http.client.HTTPException, ConnectionError, OSError)):
                plain.request("GET", "/health")
                plain.getresponse().read()
        finally:
            server.stop()

    def test_sigterm_drains(self):
        server = Server("--set", "drain_timeout_s=30")
        conn = server.connection()
        conn.request("POST", "/v1/completions", body=json.dumps({"prompt": "drain", "max_tokens": 600, "temperature": 0,
                                                                  "stream": True}),
                     headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        first = resp.read1(64)
        self.assertTrue(first.startswith(b"data: "))
        server.proc.send_signal(signal.SIGTERM)
        rest = (first + resp.read()).decode()
        conn.close()
        self.assertTrue(rest.endswith("data: [DONE]\n\n"), rest[-200:])
        finish = [json.loads(e[6:])["choices"][0]["finish_reason"] for e in rest.split("\n") if e.startswith("data: {")]
        self.assertIn(finish[-1], ("length", "stop"))
        self.assertEqual(server.proc.wait(timeout=30), 0)
        self.assertTrue(any("draining" in line for line in server.log), "".join(server.log))
        with self.assertRaises(OSError):
            http.client.HTTPConnection("127.0.0.1", server.port, timeout=5).request("GET", "/health")


# ---- Adapters (serve-adapters): several LoRA adapters served and batched in one step ----------------
# Two PEFT adapter folders of random tensors written here (the safetensors by hand), one named by
# the serve YAML's `adapters:` and one by --lora; requests pick one by "model". Each adapter's
# greedy answers must equal `tessera generate --adapter` (the adapter attached to the projections,
# one model alone), and a parallel burst mixing both adapters and the base (batched together in
# the same steps) must equal the one-at-a-time answers.

def tiny_shape():
    """The projections' [out, in] of configs/tiny-cpu.yaml's model (the served checkpoint's)."""
    with open(os.path.join(SOURCE, "configs/tiny-cpu.yaml")) as f:
        text = f.read()
    get = lambda key: int(re.search(rf"^\s+{key}: (\d+)$", text, re.M).group(1))
    hidden, inter, layers = get("hidden_size"), get("intermediate_size"), get("num_hidden_layers")
    heads, kv = get("num_attention_heads"), get("num_key_value_heads")
    d = hidden // heads
    shapes = {"self_attn.q_proj": (heads * d, hidden), "self_attn.k_proj": (kv * d, hidden),
              "self_attn.v_proj": (kv * d, hidden), "self_attn.o_proj": (hidden, heads * d),
              "mlp.gate_proj": (inter, hidden), "mlp.up_proj": (inter, hidden), "mlp.down_proj": (hidden, inter)}
    return shapes, layers


def write_adapter(folder, r, alpha, targets, layers, seed, shapes=None, std=0.25):
    """A PEFT LoRA folder (adapter_config.json, adapter_model.safetensors) of Normal(0, std) tensors."""
    import array
    import struct
    model_shapes, n_layers = tiny_shape()
    shapes = shapes or model_shapes
    rng = random.Random(seed)
    tensors = {}
    for layer in layers:
        for module, (out, inp) in shapes.items():
            if module.split(".")[1] not in targets:
                continue
            prefix = f"base_model.model.model.layers.{layer}.{module}"
            tensors[prefix + ".lora_A.weight"] = ([r, inp], [rng.gauss(0, std) for _ in range(r * inp)])
            tensors[prefix + ".lora_B.weight"] = ([out, r], [rng.gauss(0, std) for _ in range(out * r)])
    header, data, offset = {}, b"", 0
    for name, (shape, values) in sorted(tensors.items()):
        raw = array.array("f", values).tobytes()
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        data += raw
        offset += len(raw)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "adapter_model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + data)
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha, "lora_dropout": 0.0,
              "target_modules": targets, "bias": "none", "base_model_name_or_path": "tiny"}
    if list(layers) != list(range(n_layers)):
        config["layers_to_transform"] = list(layers)
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        json.dump(config, f)
    return folder


ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PROMPTS = ["Tessera serves", "adapters batched", "in one step", "the base gemm"]


class Adapters(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dirs = {"sql": write_adapter(f"{WORK}/adapter-sql", 4, 16, ALL, [0, 1], 1),
                    "chat-v2": write_adapter(f"{WORK}/adapter-chat", 2, 4, ["q_proj", "v_proj", "down_proj"], [1], 2)}
        config = f"{WORK}/serve-adapters.yaml"
        with open(config, "w") as f:
            f.write(f"adapters:\n  sql: {cls.dirs['sql']}\n")
        cls.server = Server("--config", config, "--set", "served_model_name=tiny", "--lora",
                            f"chat-v2={cls.dirs['chat-v2']}")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def answer(self, model, prompt):
        status, r = self.server.json("/v1/completions", dict(greedy(prompt, 8), model=model))
        self.assertEqual(status, 200, r)
        self.assertEqual(r["model"], model)
        return r["choices"][0]["text"]

    def test_models_lists_the_base_and_each_adapter(self):
        status, text = self.server.request("GET", "/v1/models")
        self.assertEqual(status, 200)
        self.assertEqual([m["id"] for m in json.loads(text)["data"]], ["tiny", "chat-v2", "sql"])
        status, r = self.server.json("/v1/completions", dict(greedy("x"), model="sql-v9"))
        self.assertEqual(status, 404, r)
        self.assertEqual(r["error"]["code"], "model_not_found")

    def test_each_adapter_answers_as_generate_with_it(self):
        prompts = f"{WORK}/adapter-prompts.jsonl"
        with open(prompts, "w") as f:
            f.writelines(json.dumps({"prompt": p}) + "\n" for p in PROMPTS)
        answers = {}
        for name in ("tiny", "sql", "chat-v2"):
            out = f"{WORK}/generated-{name}.jsonl"
            adapter = [] if name == "tiny" else ["--adapter", self.dirs[name]]
            run(TESSERA, "generate", "--model", MODEL, *adapter, "--input", prompts, "--output", out,
                "--temperature", "0", "--max-new-tokens", "8", "--device", "cpu")
            with open(out) as f:
                want = [json.loads(line)["text"] for line in f]
            answers[name] = [self.answer(name, p) for p in PROMPTS]
            self.assertEqual(answers[name], want, name)
        # The adapters change the answers (else this test could not see one ignored).
        self.assertNotEqual(answers["sql"], answers["tiny"])
        self.assertNotEqual(answers["chat-v2"], answers["tiny"])

    def test_mixed_parallel_burst_equals_one_at_a_time(self):
        jobs = [(("tiny", "sql", "chat-v2")[i % 3], f"{i}: {PROMPTS[i % 4]}") for i in range(24)]
        alone = [self.answer(name, p) for name, p in jobs]
        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
            together = list(pool.map(lambda job: self.answer(*job), jobs))
        self.assertEqual(together, alone)
        self.assertTrue(any("serve: ready" in line and "with 2 adapter(s)" in line for line in self.server.log))

    def test_an_adapter_that_does_not_fit_the_base_is_refused_at_load(self):
        shapes, _ = tiny_shape()
        wrong = dict(shapes, **{"self_attn.q_proj": (shapes["self_attn.q_proj"][0], 32)})
        bad = write_adapter(f"{WORK}/adapter-bad", 2, 4, ["q_proj"], [0], 3, shapes=wrong)
        done = subprocess.run([TESSERA, "serve", "--model", MODEL, "--port", "0", "--device", "cpu", "--lora",
                               f"bad={bad}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn(f"adapter 'bad' ({bad})", done.stdout)
        self.assertIn("q_proj.lora_A.weight", done.stdout)

    def test_checksums_in_the_config_are_checked(self):
        config = f"{WORK}/serve-checksums.yaml"
        with open(config, "w") as f:
            f.write("checksums:\n  state.h5: " + "0" * 64 + "\n")
        done = subprocess.run([TESSERA, "serve", "--model", MODEL, "--port", "0", "--device", "cpu", "--config", config],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn(f"{MODEL}/state.h5: checksum mismatch against checksums", done.stdout)


# ---- lm_head_quant: decoding against a packed copy of lm_head -----------------------------------

class PackedHead(unittest.TestCase):
    def test_answers_as_generate_with_the_same_head(self):
        server = Server("--set", "served_model_name=tiny", "--lm-head-quant", "int4")
        try:
            prompts = f"{WORK}/head-prompts.jsonl"
            with open(prompts, "w") as f:
                f.writelines(json.dumps({"prompt": p}) + "\n" for p in PROMPTS)
            out = f"{WORK}/generated-int4-head.jsonl"
            run(TESSERA, "generate", "--model", MODEL, "--lm-head-quant", "int4", "--input", prompts, "--output", out,
                "--temperature", "0", "--max-new-tokens", "8", "--device", "cpu")
            with open(out) as f:
                want = [json.loads(line)["text"] for line in f]
            got = [server.json("/v1/completions", greedy(p, 8))[1]["choices"][0]["text"] for p in PROMPTS]
            self.assertEqual(got, want)
            self.assertTrue(any("lm_head packed as int4" in line for line in server.log), "".join(server.log))
            # The packed head's logits are not the dense head's (else this could not see it ignored).
            body = dict(greedy("Tessera serves", 4), logprobs=1)
            packed = server.json("/v1/completions", body)[1]["choices"][0]["logprobs"]["token_logprobs"]
            dense = SERVER.json("/v1/completions", body)[1]["choices"][0]["logprobs"]["token_logprobs"]
            self.assertEqual(len(packed), 4)
            self.assertNotEqual(packed, dense)
        finally:
            server.stop()

    def test_an_unknown_scheme_is_one_error(self):
        done = subprocess.run([TESSERA, "serve", "--model", MODEL, "--port", "0", "--device", "cpu", "--set",
                               "lm_head_quant=int3"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=120)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("lm_head_quant: expected one of none, int8, int4, q8_0, q4_0, got \"int3\"", done.stdout)


if __name__ == "__main__":
    TESSERA, SOURCE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0], "-v"])
