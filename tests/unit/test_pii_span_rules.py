"""The span rules between the token model and canonical entities: whole words, address and
person edges, firm names, numbers read by their neighbours (``vsr.pii.words``, ``address``,
``person``, ``entities``). Model output is written by hand, in the shapes Rampart returns."""

from __future__ import annotations

from tests.unit.pii_spans import labelled, spans_of

from vsr.pii.address import address_extent
from vsr.pii.entities import detect_pii, model_entities
from vsr.pii.person import is_firm_name, person_extent
from vsr.pii.words import whole_word_spans


def cut(text: str, extent: tuple[int, int]) -> str:
    return text[extent[0] : extent[1]]


def test_sub_word_pieces_become_one_word_under_the_majority_label() -> None:
    text = "pay invoice 6119727 now"
    pieces = spans_of(
        text, ("ZIP_CODE", "61"), ("ZIP_CODE", "19"), ("ZIP_CODE", "7"), ("DRIVERS_LICENSE", "27")
    )
    (word,) = whole_word_spans(text, pieces)
    assert (word.label, cut(text, (word.start, word.end))) == ("ZIP_CODE", "6119727")


def test_a_span_running_over_a_line_break_is_cut_there() -> None:
    text = "Rachel Nielsen\nGuerra Inc"
    words = whole_word_spans(text, spans_of(text, ("SURNAME", "Nielsen\nGuerra")))
    assert [cut(text, (w.start, w.end)) for w in words] == ["Nielsen", "Guerra"]


def test_a_phone_cut_mid_number_is_widened() -> None:
    text = "call +1-907-358-3009x855 now"
    entities = model_entities(text, spans_of(text, ("PHONE", "+1-907-358-")))
    assert labelled(text, entities) == [("PHONE_NUMBER", "+1-907-358-3009x855")]


def test_address_takes_unit_and_house_number_before_and_state_postcode_after() -> None:
    text = "Mrs. Laura Gonzales Apt. 560 1258 Jacob Station\nDonnaberg, NV 80931 thanks"
    start = text.index("Jacob")
    assert cut(text, address_extent(text, start, text.index("Donnaberg") + 9)) == (
        "Apt. 560 1258 Jacob Station\nDonnaberg, NV 80931"
    )
    canadian = "4177 Peter Lodge\nHobbsburgh, ON C5T6K9"
    assert cut(canadian, address_extent(canadian, 0, canadian.index(","))) == canadian
    dutch = "send it to Hannahhof 232\n5183BB\nEdam?"
    start = dutch.index("Hannahhof")
    assert cut(dutch, address_extent(dutch, start, dutch.index("\n"))) == (
        "Hannahhof 232\n5183BB\nEdam"
    )


def test_address_does_not_swallow_sentence_words_or_a_following_phone() -> None:
    text = "I moved to 12 Elm Street in 2024."
    start = text.index("12")
    assert cut(text, address_extent(text, start, text.index(" in"))) == "12 Elm Street"
    contact = "Lisaside, WA 13212\n332.446.8941 office"
    assert cut(contact, address_extent(contact, 0, contact.index("\n"))) == "Lisaside, WA 13212"


def test_address_starts_below_a_name_or_company_line() -> None:
    text = "Billing: Bora Inc\n02/551\nBrahmbhatt Chowk, Ludhiana-909669"
    spans = spans_of(
        text,
        ("STREET_NAME", "Bora Inc"),
        ("BUILDING_NUMBER", "02/551"),
        ("STREET_NAME", "Brahmbhatt Chowk"),
        ("CITY", "Ludhiana"),
    )
    assert labelled(text, model_entities(text, spans)) == [
        ("STREET_ADDRESS", "02/551\nBrahmbhatt Chowk, Ludhiana-909669")
    ]


def test_postcode_the_model_called_an_id_is_part_of_the_address() -> None:
    text = "Ship to 88 Moss Lane\nLake Pennybury, NSW, 2776 please"
    spans = spans_of(
        text,
        ("BUILDING_NUMBER", "88"),
        ("STREET_NAME", "Moss Lane"),
        ("CITY", "Lake Pennybury"),
        ("GOVERNMENT_ID", "2776"),
    )
    assert labelled(text, model_entities(text, spans)) == [
        ("STREET_ADDRESS", "88 Moss Lane\nLake Pennybury, NSW, 2776")
    ]


def test_person_edges() -> None:
    verb = "Camila shouted at Amparo"
    assert cut(verb, person_extent(verb, 0, len("Camila shouted"))) == "Camila"
    titled = "Dear Dr. Aaron Owens,"
    start = titled.index("Dr.")
    assert cut(titled, person_extent(titled, start, titled.index(","))) == "Aaron Owens"
    particle = "this is Tess van de Eerenbeemt. Who"
    start = particle.index("Tess")
    assert cut(particle, person_extent(particle, start, start + 4)) == "Tess van de Eerenbeemt"
    suffix = "Name: Jason Schmidt PhD\n"
    start = suffix.index("Jason")
    assert cut(suffix, person_extent(suffix, start, suffix.index(" PhD"))) == "Jason Schmidt PhD"
    lowered = "said gertrudis to teo"
    assert cut(lowered, person_extent(lowered, 0, 14)) == "said gertrudis"  # case says nothing


def test_surnames_naming_a_firm_are_not_people() -> None:
    text = "Looking to support Moore, Berry and Fisher in Lake Michael. Lopez PLC agreed."
    for name in ("Moore", "Berry", "Fisher", "Lopez"):
        start = text.index(name)
        assert is_firm_name(text, start, start + len(name)), name
    people = "Lumbreras and Sedano were precision engineers."
    assert not is_firm_name(people, 0, len("Lumbreras"))


def test_numbers_read_by_their_neighbours() -> None:
    text = (
        "customer Adam Carroll (dmoore@example.org, 9373825056) reports that order 7159799 "
        "never arrived; 0665 664183 office"
    )
    spans = spans_of(
        text,
        ("GIVEN_NAME", "Adam"),
        ("SURNAME", "Carroll"),
        ("DRIVERS_LICENSE", "9373825056"),
        ("DRIVERS_LICENSE", "7159799"),
        ("TAX_ID", "0665"),
    )
    assert labelled(text, detect_pii(text, spans)) == [
        ("PERSON", "Adam Carroll"),
        ("EMAIL_ADDRESS", "dmoore@example.org"),
        ("PHONE_NUMBER", "9373825056"),
        ("PHONE_NUMBER", "0665 664183"),
    ]


def test_twelve_digit_maestro_card_needs_card_context() -> None:
    assert labelled("my card 501833907576", detect_pii("my card 501833907576", [])) == [
        ("CREDIT_CARD", "501833907576")
    ]
    assert detect_pii("tracking 501833907576", []) == []


def test_a_number_named_as_something_else_is_no_phone() -> None:
    for text in ("My national ID number is 640929-8673.", "Reference 0612-445 8812 attached"):
        assert [e.label for e in detect_pii(text, [])] == [], text
    assert labelled("call me on 0612-445 8812", detect_pii("call me on 0612-445 8812", [])) == [
        ("PHONE_NUMBER", "0612-445 8812")
    ]


def test_middle_initials_join_a_name() -> None:
    for text, pieces in (
        ("customer Rebecca K. King (a)", (("GIVEN_NAME", "Rebecca"), ("SURNAME", "King"))),
        ("Name: Anka A. Simonič\n", (("GIVEN_NAME", "Anka A"), ("SURNAME", "Simonič"))),
    ):
        (person,) = model_entities(text, spans_of(text, *pieces))
        assert person.label == "PERSON" and person.text in text and ". " in person.text, text


def test_surname_taken_for_a_street_line_goes_back_to_the_name() -> None:
    text = "Billing address: Zuzana Kovářová\n    151 Slivenecká Suite 880\n"
    spans = spans_of(
        text,
        ("GIVEN_NAME", "Zuzana"),
        ("STREET_NAME", "Kovářová"),
        ("BUILDING_NUMBER", "151"),
        ("STREET_NAME", "Slivenecká"),
        ("SECONDARY_ADDRESS", "Suite 880"),
    )
    assert labelled(text, model_entities(text, spans)) == [
        ("PERSON", "Zuzana Kovářová"),
        ("STREET_ADDRESS", "151 Slivenecká Suite 880"),
    ]


def test_firm_legal_forms_and_lists_in_other_languages() -> None:
    for text, name in (
        ("support Tóth Németh Kft. in Cegléd", "Németh"),
        ("During 2006, Tejeda, Sánchez y Ávalos invested", "Sánchez"),
        ("at Mašková s.r.o. today", "Mašková"),
    ):
        start = text.index(name)
        assert is_firm_name(text, start, start + len(name)), text


def test_address_takes_a_missed_town_line_with_its_postcode() -> None:
    text = "I now live in Hugstrasse 1\nLugano, JZ 4151"
    start = text.index("Hug")
    assert (
        cut(text, address_extent(text, start, text.index("\n"))) == "Hugstrasse 1\nLugano, JZ 4151"
    )
    sentence = "I live at Hugstrasse 1\nthe code is 4151"
    start = sentence.index("Hug")
    assert cut(sentence, address_extent(sentence, start, sentence.index("\n"))) == "Hugstrasse 1"


def test_postcode_shaped_numbers_are_phones_only_when_called_so() -> None:
    assert detect_pii("Gracia de la Montaña, WW 67167-3355", []) == []
    text = "call me at 67167-3355"
    assert labelled(text, detect_pii(text, [])) == [("PHONE_NUMBER", "67167-3355")]


def test_an_address_running_into_a_phone_line_is_cut_before_it() -> None:
    text = "Jansenmarka 661, 8888 Eriksen\n419 01 358 office"
    spans = spans_of(
        text,
        ("STREET_NAME", "Jansenmarka"),
        ("BUILDING_NUMBER", "661"),
        ("ZIP_CODE", "8888"),
        ("CITY", "Eriksen"),
        ("BUILDING_NUMBER", "419"),
    )
    assert labelled(text, detect_pii(text, spans)) == [
        ("STREET_ADDRESS", "Jansenmarka 661, 8888 Eriksen"),
        ("PHONE_NUMBER", "419 01 358"),
    ]


def test_phones_in_contact_lists_and_called_phones() -> None:
    text = "062 301 57 47-Office\\,+46 (0)8 152 419 22-Fax"
    assert labelled(text, detect_pii(text, [])) == [
        ("PHONE_NUMBER", "062 301 57 47"),
        ("PHONE_NUMBER", "+46 (0)8 152 419 22"),
    ]
    for text, number in (
        ("fix the heating. My number is 26 825506.", "26 825506"),
        ("and phone 95 92 16.", "95 92 16"),
        ("at 7pm, contact 65477836.", "65477836"),
    ):
        assert labelled(text, detect_pii(text, [])) == [("PHONE_NUMBER", number)], text
    assert detect_pii("we sold 26 825506 units", []) == []


def test_lower_cased_iban_is_found() -> None:
    text = "transfer from dk38 3705 2373 6883 28 to other bank accounts"
    assert labelled(text, detect_pii(text, [])) == [("BANK_ACCOUNT", "dk38 3705 2373 6883 28")]


def test_account_and_routing_numbers_named_as_such() -> None:
    text = "My bank account number is 0202363903 and the routing number is 091926685."
    assert labelled(text, detect_pii(text, [])) == [
        ("BANK_ACCOUNT", "0202363903"),
        ("BANK_ACCOUNT", "091926685"),
    ]
    assert detect_pii("the routing number is 091926686.", []) == []  # ABA checksum fails


def test_iban_followed_by_a_word_is_cut_where_the_checksum_holds() -> None:
    text = "from PL58 8811 9958 7393 7676 4889 5996 to other bank accounts"
    assert labelled(text, detect_pii(text, [])) == [
        ("BANK_ACCOUNT", "PL58 8811 9958 7393 7676 4889 5996")
    ]


def test_an_id_split_at_a_hyphen_and_ending_a_sentence() -> None:
    text = "license number is S437-8664-1578. My tax ID is 33-6243639."
    spans = spans_of(
        text,
        ("DRIVERS_LICENSE", "S437"),
        ("DRIVERS_LICENSE", "-8664-1578"),
        ("TAX_ID", "33-6243639."),
    )
    assert labelled(text, model_entities(text, spans)) == [
        ("GOVERNMENT_ID", "S437-8664-1578"),
        ("GOVERNMENT_ID", "33-6243639"),
    ]


def test_names_in_quoted_blocks_with_initials_and_firms_with_nordic_forms() -> None:
    quoted = ">Roksana Nastały\n>Wdowczyk-Proć i syn s.c.\n"
    start = quoted.index("Roksana")
    assert cut(quoted, person_extent(quoted, start, start + 7)) == "Roksana Nastały"
    icelandic = "Védís Ó. Ólafsdóttir\n\nBoezinge"
    assert cut(icelandic, person_extent(icelandic, 0, 5)) == "Védís Ó. Ólafsdóttir"
    heard = "have you heard Mikayla A. Weld speak yet?"
    start = heard.index("Mikayla")
    assert cut(heard, person_extent(heard, start, start + 7)) == "Mikayla A. Weld"
    for text, name in (
        ("??? Ottosson Pettersson HB\n", "Pettersson"),
        ("??? Nørgaard & Søn A/S\n", "Nørgaard"),
        ("Morais Esteves Lda.\n", "Esteves"),
    ):
        start = text.index(name)
        assert is_firm_name(text, start, start + len(name)), text


def test_book_and_product_numbers_are_no_identifiers() -> None:
    """The model reads an ISBN's digits as an ID number; the word before it says what it is."""
    for text, number in (
        ("Is ISBN 978-3-16-148410-0 valid?", "978-3-16-148410-0"),
        ("Check ISBN 0-306-40615-2 for me", "0-306-40615-2"),
    ):
        assert detect_pii(text, spans_of(text, ("GOVERNMENT_ID", number))) == [], text
    text = "My ID is 978-3-16-148410-0"
    assert [
        e.label for e in detect_pii(text, spans_of(text, ("GOVERNMENT_ID", "978-3-16-148410-0")))
    ] == ["GOVERNMENT_ID"]


def test_code_is_no_identifier() -> None:
    """Identifiers, commit hashes and file names the model reads as ID numbers are code; the same
    characters named as an ID still are one."""
    sha = "97dfffde06115e58261dbab3707ad70d5c86ba1f"
    for text, span in (
        ("If true and SetX11Keyboard() is used", "SetX11Keyboard"),
        ("  * [d803038] Separate GTest and GMock", "d803038"),
        (f"Envoy Protos Commit SHA: `{sha}`", sha),
        ("build and install GdkPixbuf in the default prefix", "GdkPixbuf"),
        ("d/p/debian/Work-around-1014417-in-Meson.patch", "around-1014417"),
        ("musl-ssp:\n\npr79724-revert", "pr79724"),
        (
            "new signing key 19882D92DDA4C400C22C0D56CC2AF4472167BE03",
            "19882D92DDA4C400C22C0D56CC2AF4472167BE03",
        ),
        ("Closes: bug #1026245 in the driver", "1026245"),
    ):
        assert detect_pii(text, spans_of(text, ("GOVERNMENT_ID", span))) == [], text
    for text, span in (
        ("my ID is d8030388", "d8030388"),
        ("tax number 12-3456789 please", "12-3456789"),
        ("passport issued in 2019, number C03005988", "C03005988"),
    ):
        found = detect_pii(text, spans_of(text, ("GOVERNMENT_ID", span)))
        assert [e.label for e in found] == ["GOVERNMENT_ID"], text


def test_an_ip_address_is_no_identifier_or_account() -> None:
    """The model reads IPv4 addresses as ID or account numbers ("ssh to 172.16.4.12 from
    172.16.4.11" was blocked as a bank account). A private or documentation address identifies
    no one; a public one is an IP_ADDRESS, which the pattern reports."""
    for text, label, span in (
        ("Why can't I ssh to 172.16.4.12 from 172.16.4.11?", "BANK_ACCOUNT", "172.16.4.11"),
        ("nginx: client 203.0.113.77 sent too large body", "GOVERNMENT_ID", "203.0.113.77"),
        ("upstream 10.0.3.23 refused the connection", "TAX_ID", "10.0.3.23"),
        ("It cannot reach 192.168.1.20.", "GOVERNMENT_ID", "192.168.1.20."),
    ):
        assert detect_pii(text, spans_of(text, (label, span))) == [], text
    text = "the scan came from 81.2.69.142 again"
    found = detect_pii(text, spans_of(text, ("GOVERNMENT_ID", "81.2.69.142")))
    assert labelled(text, found) == [("IP_ADDRESS", "81.2.69.142")]
