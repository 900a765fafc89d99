"""``vsr dev``: the local stack (Envoy on :8801, ``vsr serve``, simulated backends) until Ctrl-C."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dev",
        help="run Envoy + vsr + simulated llama3-8b and phi4-mini backends locally",
        description="Start the simulated backends, `vsr serve` and Envoy (deploy/envoy/envoy.yaml) "
        "and keep them running until Ctrl-C or SIGTERM, which stops them all.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("config/default.yaml"),
        help="router config for vsr serve (default config/default.yaml)",
    )
    parser.add_argument("--envoy", help="the Envoy binary (default .venv-envoy/bin/envoy)")
    parser.add_argument(
        "--port", type=int, default=8801, help="Envoy's listener port (default 8801)"
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        help="write each process's log to a file here instead of the terminal",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import signal
    import threading

    from vsr.devstack import DevStack, StackPorts, find_envoy
    from vsr.errors import ConfigError

    if not args.config.is_file():
        raise ConfigError(f"{args.config}: config file not found")
    ports = dataclasses.replace(StackPorts(), listener=args.port)
    stack = DevStack(
        args.config, ports=ports, envoy_bin=find_envoy(args.envoy), log_dir=args.log_dir
    )
    stopped = threading.Event()
    # SIGTERM is turned into an orderly stop, like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda signum, frame: stopped.set())
    print(
        f"starting: backends {dict(ports.backends)}, vsr gRPC :{ports.grpc} HTTP :{ports.http} "
        f"metrics :{ports.metrics}, Envoy :{ports.listener} (admin :{ports.admin})",
        flush=True,
    )
    try:
        stack.start()
        print(
            f"\nvsr is ready. Send OpenAI requests to {stack.url}/v1/chat/completions, e.g.\n"
            f"  curl -i {stack.url}/v1/chat/completions -H 'Content-Type: application/json' \\\n"
            '    -d \'{"model": "auto", "messages": [{"role": "user", '
            '"content": "What is 2+2 * (5-1)?"}]}\'\n'
            f"Models: {stack.url}/v1/models  Metrics: http://127.0.0.1:{ports.metrics}/metrics\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        while not stopped.wait(0.5):
            for managed in stack.processes:
                if managed.process.poll() is not None:
                    print(
                        f"{managed.name} exited with {managed.process.returncode}; stopping",
                        flush=True,
                    )
                    return 1
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping...", flush=True)
        stack.stop()
    return 0
