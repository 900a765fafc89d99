"""Tracing is off by default and free when off; when on, from the config or OTEL_* variables."""

from __future__ import annotations

import subprocess
import sys

from vsr.observability import tracing


def test_off_by_default_imports_nothing_of_opentelemetry() -> None:
    code = (
        "import sys\n"
        "from vsr.extproc import service\n"
        "from vsr.observability import tracing\n"
        "assert tracing.start_request({'traceparent': 'x'}, {}) is None\n"
        "assert tracing.collect_encoder_runs() is None\n"
        "tracing.note_encoder_run('m', 'cpu', 0.0, 1, ())\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_endpoint_from_config_or_environment() -> None:
    endpoint = tracing.tracing_endpoint
    assert endpoint(enabled_in_config=False, endpoint=None, environ={}) is None
    assert endpoint(enabled_in_config=True, endpoint=None, environ={}) == "http://localhost:4317"
    assert endpoint(enabled_in_config=True, endpoint="http://c:4317", environ={}) == "http://c:4317"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4317"}
    assert endpoint(enabled_in_config=False, endpoint=None, environ=env) == "http://otel:4317"
    traces = {**env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4317"}
    assert endpoint(enabled_in_config=False, endpoint=None, environ=traces) == "http://traces:4317"
    for off in ({"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}):
        assert endpoint(enabled_in_config=True, endpoint="http://c", environ={**env, **off}) is None


def test_settings_carry_the_otel_variables() -> None:
    from vsr.settings import Settings

    settings = Settings.load(environ={"OTEL_SERVICE_NAME": "edge", "VSR_LOG_LEVEL": "debug"})
    assert settings.otel_environment == {"OTEL_SERVICE_NAME": "edge"}
    assert Settings.load(environ={}).otel_environment == {}
