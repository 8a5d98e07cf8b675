"""The Text Processor: its word splitter (Java's `\\W+`, UNICODE_CHARACTER_CLASS) and topology."""

from __future__ import annotations

import itertools
import unicodedata

import pytest

from services.sentences import sentences
from services.text_processor import SERVICE, build_topology, words_of
from topicflow import Serdes, StreamsConfig, TopologyError
from topicflow.testing import KeyValue, TopologyTestDriver

ZERO_WIDTH_JOINERS = "\u200c\u200d"


def is_java_word_char(ch: str) -> bool:
    """Java's `\\w` with UNICODE_CHARACTER_CLASS:
    [\\p{Alpha}\\p{gc=Mn}\\p{gc=Me}\\p{gc=Mc}\\p{Digit}\\p{gc=Pc}\\p{IsJoin_Control}],
    approximating Alphabetic by the letter categories and Nl."""
    category = unicodedata.category(ch)
    return category[0] in "LM" or category in ("Nd", "Nl", "Pc") or ch in ZERO_WIDTH_JOINERS


def reference_words(line: str | None) -> list[str]:
    """Lowercase, then keep every maximal run of word characters: written by hand, no regex."""
    words: list[str] = []
    current: list[str] = []
    for ch in (line or "").lower():
        if is_java_word_char(ch):
            current.append(ch)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return words


# -- words_of -------------------------------------------------------------------------------------


def test_reference_tokenizer_sanity() -> None:
    assert reference_words("  Hi, there!") == ["hi", "there"]
    assert reference_words("a_1 b") == ["a_1", "b"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Hello World", ["hello", "world"]),
        ("HELLO hello HeLLo", ["hello", "hello", "hello"]),
        ("a, b;;  c--d\te\nf", ["a", "b", "c", "d", "e", "f"]),
        ("...leading punctuation", ["leading", "punctuation"]),
        ("trailing punctuation!!!", ["trailing", "punctuation"]),
        ("\u201cWell,\u201d she said", ["well", "she", "said"]),
        ("don't stop", ["don", "t", "stop"]),
        ("well-known e-mail", ["well", "known", "e", "mail"]),
        ("room_101 is B2B __init__", ["room_101", "is", "b2b", "__init__"]),
        ("pi is 3.14159", ["pi", "is", "3", "14159"]),
    ],
)
def test_words_of_lowercases_and_splits_on_non_word_runs(line: str, expected: list[str]) -> None:
    assert words_of(line) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Straße", ["straße"]),
        ("Naïve café", ["naïve", "café"]),
        ("東京タワー", ["東京タワー"]),
        ("東京タワー、大阪城。", ["東京タワー", "大阪城"]),
        ("Ελληνικά ΚΕΙΜΕΝΑ", ["ελληνικά", "κειμενα"]),  # noqa: RUF001
        ("Москва, Россия", ["москва", "россия"]),
        ("smörgåsbord jalapeño façade", ["smörgåsbord", "jalapeño", "façade"]),
        ("٣٤ apples", ["٣٤", "apples"]),
    ],
)
def test_words_of_keeps_unicode_words(line: str, expected: list[str]) -> None:
    assert words_of(line) == expected


def test_combining_accent_stays_inside_the_word() -> None:
    decomposed = "cafe\u0301"  # "café" with a combining acute accent
    assert words_of(f"Un {decomposed} noir") == ["un", decomposed, "noir"]
    assert words_of("Cafe\u0301\u0327!") == ["cafe\u0301\u0327"]


def test_zero_width_joiners_stay_inside_the_word() -> None:
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # mi-khaham, with a ZWNJ
    assert words_of(f"{persian} x") == [persian, "x"]


@pytest.mark.parametrize("line", [None, "", " ", "...", " -- !? ", "\u201c\u201d"])
def test_words_of_without_words_is_empty(line: str | None) -> None:
    assert words_of(line) == []


@pytest.mark.parametrize(
    "line",
    [
        "हिन्दी भाषा",  # Devanagari: vowel signs (Mc) and virama (Mn) inside words
        "สวัสดี ครับ",  # Thai: vowel and tone marks (Mn)
        "தமிழ் மொழி",  # Tamil: vowel signs (Mc) and pulli (Mn)
    ],
)
def test_words_with_non_latin_combining_marks_stay_whole(line: str) -> None:
    assert words_of(line) == line.split()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("x\u00b2 y", ["x", "y"]),  # superscript two is No: not a Java word character
        ("a\u203fb c", ["a\u203fb", "c"]),  # undertie is Pc: a Java word character
    ],
)
def test_words_follow_java_digit_and_connector_classes(line: str, expected: list[str]) -> None:
    assert words_of(line) == expected


def test_words_of_matches_the_reference_on_generated_text() -> None:
    for line in itertools.islice(sentences(7), 2000):
        assert words_of(line) == reference_words(line), line


# -- the topology on the driver ------------------------------------------------------------------


def service_config() -> StreamsConfig:
    return SERVICE.config(environ={})


def test_service_config_is_the_java_examples() -> None:
    config = service_config()
    assert config.application_id == "text-processor-app"
    assert config.default_key_serde is Serdes.String()
    assert config.default_value_serde is Serdes.String()
    assert config.commit_interval_ms == 1000
    assert config.bootstrap_servers is None


def test_prefix_applies_to_both_topics() -> None:
    with TopologyTestDriver(build_topology("p."), service_config()) as driver:
        driver.create_input_topic("p.textlines").pipe_input("Hello, World!")
        words = driver.create_output_topic("p.words").read_values_to_list()
        assert words == ["hello", "world"]
        assert driver.producer_topics() == ["p.words"]


def test_service_topology_reads_kafka_prefix_from_the_environment() -> None:
    environ = {"KAFKA_PREFIX": "tenant."}
    topology = SERVICE.topology(environ=environ)
    assert topology.source_topics() == ["tenant.textlines"]
    config = SERVICE.config(environ=environ)
    assert config.application_id == "tenant.text-processor-app"
    with TopologyTestDriver(topology, config) as driver:
        driver.create_input_topic("tenant.textlines").pipe_input("One two")
        assert driver.create_output_topic("tenant.words").read_values_to_list() == ["one", "two"]


def test_unprefixed_topology_does_not_read_prefixed_topics() -> None:
    with TopologyTestDriver(build_topology(), service_config()) as driver:
        assert build_topology().source_topics() == ["textlines"]
        with pytest.raises(TopologyError, match="textlines"):
            driver.create_input_topic("p.textlines")


def test_null_keys_pass_through_and_keys_are_kept() -> None:
    with TopologyTestDriver(build_topology(), service_config()) as driver:
        lines = driver.create_input_topic("textlines")
        lines.pipe_input("The cat")
        lines.pipe_input("line-2", "sat DOWN", timestamp=99)
        out = driver.create_output_topic("words").read_records_to_list()
    assert [(r.key, r.value) for r in out] == [
        (None, "the"),
        (None, "cat"),
        ("line-2", "sat"),
        ("line-2", "down"),
    ]
    assert [r.timestamp for r in out[2:]] == [99, 99]


def test_null_and_empty_lines_produce_nothing() -> None:
    with TopologyTestDriver(build_topology(), service_config()) as driver:
        lines = driver.create_input_topic("textlines")
        lines.pipe_input(None)
        lines.pipe_input("")
        lines.pipe_input("?!")
        assert driver.create_output_topic("words").is_empty()
        assert driver.metrics.records_consumed == 3


def test_unicode_words_survive_the_string_serdes() -> None:
    with TopologyTestDriver(build_topology(), service_config()) as driver:
        driver.create_input_topic("textlines").pipe_input("Straße 東京タワー cafe\u0301")
        raw = driver.create_output_topic("words", Serdes.Bytes(), Serdes.Bytes())
        assert raw.read_values_to_list() == [
            "straße".encode(),
            "東京タワー".encode(),
            "cafe\u0301".encode(),
        ]


def test_every_word_of_1000_generated_lines_arrives_in_order() -> None:
    lines = list(itertools.islice(sentences(2024), 1000))
    expected = [
        KeyValue(f"line-{i}", word)
        for i, line in enumerate(lines)
        for word in reference_words(line)
    ]
    assert len(expected) > 5000
    with TopologyTestDriver(build_topology(), service_config()) as driver:
        source = driver.create_input_topic("textlines")
        for i, line in enumerate(lines):
            source.pipe_input(f"line-{i}", line, timestamp=1_000 + i)
        words = driver.create_output_topic("words")
        assert words.get_queue_size() == len(expected)
        got = words.read_key_values_to_list()
        assert driver.metrics.records_consumed == 1000
    assert got == expected
