"""Fixtures of the serving tests: a tiny SAMoRA adapter over four tasks, and ``samora serve`` running on
it on 127.0.0.1 (started once per module, stopped by the last test of tests/serve/test_server.py)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import torch

from tests.helpers import subprocess_environment

SERVED_TASKS = ["boolq", "piqa", "arc_easy", "hellaswag"]
API_KEY = "test-key"
LIMITS = {"max_tokens_limit": 32, "max_prompt_tokens": 64}


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, tiny_model_dir):
    """A SAMoRA adapter (r=4, 3 experts) on the tiny Llama of ``tiny_model_dir``, its weights moved far
    from init so that the four tasks answer differently."""
    from transformers import LlamaForCausalLM

    import samora

    torch.manual_seed(0)
    base = LlamaForCausalLM.from_pretrained(tiny_model_dir)
    model = samora.get_model(base, samora.SAMoRAConfig(r=4, num_experts=3, tasks=SERVED_TASKS))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn(parameter.shape, generator=generator))
    return samora.save_adapter(model, tmp_path_factory.mktemp("served") / "mixture")


@pytest.fixture(scope="module")
def reference_model(adapter_dir, tiny_model_dir):
    """The served adapter loaded in this process: what each answer is checked against."""
    from transformers import LlamaForCausalLM

    import samora

    return samora.load_adapter(LlamaForCausalLM.from_pretrained(tiny_model_dir), adapter_dir).eval()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(adapter_dir, tmp_path_factory):
    """``samora serve`` on the adapter at http://127.0.0.1:PORT, once /health answers 200; yields
    ``(base_url, process)``. Its output goes to a log file that a failure to start prints."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    command = [sys.executable, "-m", "samora", "serve", str(adapter_dir), "--port", str(port), "--api-key", API_KEY]
    command += ["--max-batch-size", "8", "--batch-timeout", "0.05"]
    command += [f"--{name.replace('_', '-')}={value}" for name, value in LIMITS.items()]
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=subprocess_environment())
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, process, log, timeout=180)
        yield base_url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def wait_until_healthy(base_url: str, process: subprocess.Popen, log, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"samora serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if status_of(f"{base_url}/health") == 200:
            return
        time.sleep(0.5)
    pytest.fail(f"samora serve was not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


def http(url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    """``(status, body)`` of a GET (or a POST of ``body``) with the standard library, whatever the status."""
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def status_of(url: str) -> int | None:
    """The status of GET ``url``; None while nothing answers."""
    try:
        return http(url)[0]
    except OSError:
        return None
