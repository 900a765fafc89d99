"""Model spans -> canonical entities: joining pieces, re-typing numbers by context, patterns."""

from __future__ import annotations

from tests.unit.pii_spans import Span, labelled, spans_of

from vsr.pii.entities import detect_pii, model_entities


def test_name_pieces_join_into_one_person() -> None:
    text = "I am John Smith."
    spans = spans_of(text, ("B-GIVEN_NAME", "John"), ("B-SURNAME", "Smith"))
    assert labelled(text, model_entities(text, spans)) == [("PERSON", "John Smith")]


def test_address_pieces_join_across_commas_and_unit_words() -> None:
    text = "Ship to 12 Elm St, Apt. 4, Springfield, IL 62704 today"
    spans = spans_of(
        text,
        ("B-BUILDING_NUMBER", "12"),
        ("B-STREET_NAME", "Elm St"),
        ("B-SECONDARY_ADDRESS", "4"),
        ("B-CITY", "Springfield"),
        ("B-STATE", "IL"),
        ("B-ZIP_CODE", "62704"),
    )
    assert labelled(text, model_entities(text, spans)) == [
        ("STREET_ADDRESS", "12 Elm St, Apt. 4, Springfield, IL 62704")
    ]


def test_a_city_alone_is_a_location_not_an_address() -> None:
    text = "I flew to Paris"
    entities = model_entities(text, spans_of(text, ("B-CITY", "Paris")))
    assert labelled(text, entities) == [("LOCATION", "Paris")]


def test_low_scores_start_nothing_but_may_continue_an_entity() -> None:
    text = "Susan Sanders and Bob"
    spans = [
        Span("B-GIVEN_NAME", 0, 5),
        Span("B-SURNAME", 6, 13, 0.4),
        Span("B-GIVEN_NAME", 18, 21, 0.4),
    ]
    assert labelled(text, model_entities(text, spans)) == [("PERSON", "Susan Sanders")]


def test_numbers_are_retyped_by_the_nearest_keyword_before_them() -> None:
    text = "Pay into account 000123456789 and quote order 5512394"
    spans = spans_of(text, ("B-TAX_ID", "000123456789"), ("B-TAX_ID", "5512394"))
    assert labelled(text, model_entities(text, spans)) == [("BANK_ACCOUNT", "000123456789")]


def test_passports_keep_their_type_whatever_the_context() -> None:
    text = "my account passport number X1234567"
    entities = model_entities(text, spans_of(text, ("B-PASSPORT", "X1234567")))
    assert labelled(text, entities) == [("GOVERNMENT_ID", "X1234567")]


def test_pattern_matches_replace_the_model_spans_they_overlap() -> None:
    text = "card 4111 1111 1111 1111 from Jane"
    spans = spans_of(text, ("B-BANK_ACCOUNT", "4111 1111"), ("B-GIVEN_NAME", "Jane"))
    assert labelled(text, detect_pii(text, spans)) == [
        ("CREDIT_CARD", "4111 1111 1111 1111"),
        ("PERSON", "Jane"),
    ]
    assert detect_pii(text, spans)[0].source == "pattern"
    assert labelled(text, detect_pii(text, spans, use_patterns=False))[0] == (
        "BANK_ACCOUNT",
        "4111 1111",
    )


def test_unknown_labels_and_outside_are_ignored() -> None:
    text = "hello world"
    assert detect_pii(text, [Span("B-ANIMAL", 0, 5), Span("O", 6, 11)]) == []


def test_an_address_starts_at_the_unit_word_the_model_left_out() -> None:
    text = "Send it to Suite 956 44 Thompson Gardens please"
    spans = spans_of(
        text,
        ("B-SECONDARY_ADDRESS", "956"),
        ("B-BUILDING_NUMBER", "44"),
        ("B-STREET_NAME", "Thompson Gardens"),
    )
    assert labelled(text, model_entities(text, spans)) == [
        ("STREET_ADDRESS", "Suite 956 44 Thompson Gardens")
    ]
