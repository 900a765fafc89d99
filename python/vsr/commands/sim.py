"""``vsr sim``: an OpenAI-compatible simulated backend (for tests and the local stack)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run a simulated OpenAI-compatible model server",
        description="Serve /v1/chat/completions (JSON and SSE), /v1/models and /health, answering "
        "as MODEL. With --echo every answer carries the headers and body it received.",
    )
    parser.add_argument("--model", required=True, help="the served model name")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--echo",
        action="store_true",
        help="always include 'sim_request' (else only with x-sim-echo: true)",
    )
    parser.add_argument(
        "--strict-model",
        action="store_true",
        help="answer 404 when the request's model is not MODEL, as vLLM does",
    )
    parser.add_argument(
        "--delay-ms", type=float, default=0.0, help="wait this long before each answer"
    )
    parser.add_argument(
        "--log-format", choices=("json", "console"), default="console", help="default console"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vsr.observability.logging import configure_logging
    from vsr.simulator import SimulatorOptions, run_simulator

    configure_logging(args.log_format, "info")
    options = SimulatorOptions(
        model=args.model,
        echo=args.echo,
        strict_model=args.strict_model,
        delay_s=args.delay_ms / 1000.0,
    )
    try:
        run_simulator(options, args.host, args.port)
    except (OSError, OverflowError) as error:  # the port is taken, not ours, or out of range
        print(f"vsr sim: cannot listen on {args.host}:{args.port} ({error})", file=sys.stderr)
        return 1
    return 0
