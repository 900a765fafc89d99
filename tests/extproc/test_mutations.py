"""The pure builders of ext_proc responses, checked without a server."""

from __future__ import annotations

import json

from tests.extproc.scripted import header_map, set_headers

from vsr.extproc import mutations
from vsr.extproc.headers import header_dict, header_values, untrusted_request_headers


def test_headers_go_in_raw_value_only() -> None:
    option = mutations.header_option("x-selected-model", "phi4-mini")
    assert option.header.raw_value == b"phi4-mini"
    assert option.header.value == ""
    assert option.append_action == option.OVERWRITE_IF_EXISTS_OR_ADD
    assert mutations.header_option("x-a", "1", append=True).append_action == (
        option.APPEND_IF_EXISTS_OR_ADD
    )


def test_answers_built_from_shared_header_options_stay_independent() -> None:
    """Header options are built once and copied into each answer: editing one answer (or a
    header_option a caller got) changes neither the next answer nor the shared option."""
    first = mutations.response_headers_response({"x-vsr-selected-model": "phi4-mini"})
    first.response_headers.response.header_mutation.set_headers[0].header.raw_value = b"edited"
    mutations.header_option("x-vsr-selected-model", "phi4-mini").header.raw_value = b"edited"
    second = mutations.response_headers_response({"x-vsr-selected-model": "phi4-mini"})
    assert set_headers(second.response_headers.response.header_mutation) == {
        "x-vsr-selected-model": "phi4-mini"
    }


def test_shared_header_options_are_bounded() -> None:
    for length in range(mutations._MAX_OPTIONS + 100):
        mutations.request_body_response(
            body=b"x" * (length % 5000), set_headers={"x-n": str(length)}
        )
    assert len(mutations._OPTIONS) == mutations._MAX_OPTIONS
    response = mutations.request_body_response(body=b"{}", set_headers={"x-selected-model": "m"})
    assert set_headers(response.request_body.response.header_mutation) == {
        "x-selected-model": "m",
        "content-length": "2",
    }


def test_empty_edits_keep_their_message_shape() -> None:
    """What Envoy reads (a present but empty header mutation, no body mutation) is unchanged
    by building answers in place."""
    body_answer = mutations.request_body_response().request_body.response
    assert body_answer.HasField("header_mutation")
    assert not body_answer.HasField("body_mutation")
    headers_answer = mutations.response_headers_response().response_headers
    assert headers_answer.HasField("response")
    assert not headers_answer.response.HasField("header_mutation")
    cleared = mutations.response_body_response(b"").response_body.response.body_mutation
    assert cleared.clear_body


def test_body_replacement_sets_content_length_and_clears_route_cache() -> None:
    body = json.dumps({"model": "phi4-mini", "messages": []}).encode()
    response = mutations.request_body_response(
        body=body,
        set_headers={"x-selected-model": "phi4-mini"},
        remove_headers=["x-drop"],
        clear_route_cache=True,
    )
    common = response.request_body.response
    assert common.body_mutation.body == body
    assert common.clear_route_cache
    assert set_headers(common.header_mutation) == {
        "x-selected-model": "phi4-mini",
        "content-length": str(len(body)),
    }
    assert list(common.header_mutation.remove_headers) == ["x-drop"]


def test_unchanged_body_sends_no_body_mutation() -> None:
    response = mutations.request_body_response(set_headers={"x-selected-model": "m"})
    common = response.request_body.response
    assert not common.HasField("body_mutation")
    assert "content-length" not in set_headers(common.header_mutation)


def test_openai_error_shape() -> None:
    response = mutations.openai_error(413, "too big", "request_too_large")
    immediate = response.immediate_response
    assert immediate.status.code == 413
    assert set_headers(immediate.headers)["content-type"] == "application/json"
    assert json.loads(immediate.body) == {
        "error": {
            "message": "too big",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_too_large",
        }
    }


def test_refusal_as_completion_and_as_sse() -> None:
    headers = {"x-vsr-jailbreak-blocked": "true"}
    plain = mutations.refusal_response("auto", "no", stream=False, headers=headers)
    completion = json.loads(plain.immediate_response.body)
    assert completion["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": "no"},
        "finish_reason": "content_filter",
    }
    assert set_headers(plain.immediate_response.headers)["x-vsr-jailbreak-blocked"] == "true"

    streamed = mutations.refusal_response("auto", "no", stream=True, headers=headers)
    sse = streamed.immediate_response.body.decode()
    assert set_headers(streamed.immediate_response.headers)["content-type"] == "text/event-stream"
    events = [block.removeprefix("data: ") for block in sse.split("\n\n") if block]
    assert events[-1] == "[DONE]"
    first, last = (json.loads(event) for event in events[:-1])
    assert first["id"] == last["id"]
    assert first["choices"][0]["delta"]["content"] == "no"
    assert last["choices"][0]["finish_reason"] == "content_filter"


def test_models_list_payload() -> None:
    payload = json.loads(mutations.models_list_payload(["auto", "m1"], created=7))
    assert payload == {
        "object": "list",
        "data": [
            {"id": "auto", "object": "model", "created": 7, "owned_by": "vsr"},
            {"id": "m1", "object": "model", "created": 7, "owned_by": "vsr"},
        ],
    }


def test_header_dict_reads_raw_value_and_value() -> None:
    headers = header_dict(header_map({"X-Raw": "1"}))
    assert headers == {"x-raw": "1"}


def test_header_values_reads_only_the_names_asked_for() -> None:
    from envoy.config.core.v3 import base_pb2

    header_map_ = base_pb2.HeaderMap(
        headers=[
            base_pb2.HeaderValue(key=":status", raw_value=b"200"),
            base_pb2.HeaderValue(key="Content-Type", raw_value=b"application/json"),
            base_pb2.HeaderValue(key="content-type", value="text/plain"),  # a repeat: the last
            base_pb2.HeaderValue(key="x-other", raw_value=b"\xff"),
        ]
    )
    names = frozenset({":status", "content-type", "content-encoding"})
    assert header_values(header_map_, names) == {":status": "200", "content-type": "text/plain"}
    full = header_dict(header_map_)
    assert header_values(header_map_, names) == {k: v for k, v in full.items() if k in names}


def test_untrusted_request_headers() -> None:
    names = ["x-vsr-selected-model", "x-selected-model", "x-team", "content-type"]
    assert untrusted_request_headers(names) == ["x-selected-model", "x-vsr-selected-model"]


def test_streamed_response_body_mode_override() -> None:
    mode = mutations.streamed_response_body_mode()
    assert mode.response_body_mode == mode.STREAMED


def test_repeated_answers_are_the_answers_built_afresh() -> None:
    """Answers served from their serialized form carry the same bytes as ones built directly,
    and each is its own message."""
    mode = mutations.streamed_response_body_mode()
    vsr_headers = {"x-vsr-selected-model": "phi4-mini", "x-vsr-response-path": "upstream"}
    body = b'{"model":"phi4-mini","messages":[]}'
    cases = [
        (
            lambda: mutations.response_headers_response(vsr_headers, (), mode_override=mode),
            lambda: mutations._response_headers(vsr_headers, (), mode),
        ),
        (
            lambda: mutations.response_headers_response(None, ("content-length",)),
            lambda: mutations._response_headers(None, ("content-length",), None),
        ),
        (
            lambda: mutations.request_headers_response(["x-vsr-debug"]),
            lambda: mutations._request_headers(["x-vsr-debug"]),
        ),
        (lambda: mutations.response_body_response(), lambda: mutations._response_body(None)),
    ]
    for cached, fresh in cases:
        first, second = cached(), cached()
        assert first.SerializeToString() == fresh().SerializeToString()
        assert first is not second and first == second
    answers = [
        mutations.request_body_response(
            body=body if with_body else None,
            set_headers={"x-selected-model": "phi4-mini"},
            add_headers=[("x-a", "1")],
            remove_headers=["x-drop"],
            clear_route_cache=True,
        )
        for with_body in (True, True, False)
    ]
    direct = mutations._request_body(
        (("x-selected-model", "phi4-mini"), ("content-length", str(len(body)))),
        (("x-a", "1"),),
        ("x-drop",),
        True,
    )
    direct.request_body.response.body_mutation.body = body
    assert answers[0].SerializeToString() == direct.SerializeToString()
    assert answers[1] == answers[0]
    assert not answers[2].request_body.response.HasField("body_mutation")
    answers[0].request_body.response.header_mutation.remove_headers.append("x-edited")
    assert list(answers[1].request_body.response.header_mutation.remove_headers) == ["x-drop"]


def test_repeated_answers_are_bounded() -> None:
    for index in range(mutations._MAX_ANSWERS + 50):
        mutations.response_headers_response({"x-vsr-selected-model": f"m{index}"})
    assert len(mutations._ANSWERS) == mutations._MAX_ANSWERS


def test_request_body_answers_share_one_entry_across_body_lengths() -> None:
    """The body's length and bytes go on the parsed answer: bodies of any length share the
    edits' entry, with the bytes an answer built whole has; a traceparent is never kept."""
    edits = {"x-selected-model": "phi4-mini", "x-vsr-k": "shared-entry-test"}
    mutations._ANSWERS.clear()  # not full from another test: every entry is counted below
    before = len(mutations._ANSWERS)
    for body in (b"{}", b'{"model":"phi4-mini"}', b"x" * 300, b""):
        answer = mutations.request_body_response(
            body=body, set_headers=edits, remove_headers=["x-drop"], clear_route_cache=True
        )
        whole = mutations._request_body(
            (*edits.items(), ("content-length", str(len(body)))), (), ("x-drop",), True
        )
        whole.request_body.response.body_mutation.body = body
        assert answer.SerializeToString() == whole.SerializeToString()
    assert len(mutations._ANSWERS) == before + 1
    traced = {**edits, "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    answer = mutations.request_body_response(body=b"{}", set_headers=traced)
    assert set_headers(answer.request_body.response.header_mutation) == {
        **traced,
        "content-length": "2",
    }
    assert len(mutations._ANSWERS) == before + 1
