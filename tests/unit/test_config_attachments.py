"""Which Kafka attachment's variables a service reads."""

from __future__ import annotations

import pytest

from topicflow.config import KafkaEnv, StreamsConfig, attachment_name
from topicflow.errors import ConfigError

GRAY = {
    "HEROKU_KAFKA_GRAY_URL": "kafka+ssl://gray1:9096,kafka+ssl://gray2:9096",
    "HEROKU_KAFKA_GRAY_PREFIX": "gray-",
    "HEROKU_KAFKA_GRAY_TRUSTED_CERT": (
        "-----BEGIN CERTIFICATE-----\nGRAYCA\n-----END CERTIFICATE-----"
    ),
}


def test_default_attachment_is_kafka() -> None:
    env = {"KAFKA_URL": "kafka://a:9092", "KAFKA_PREFIX": "p."}
    assert attachment_name(env) == "KAFKA"
    assert StreamsConfig.from_env("x-app", env).application_id == "p.x-app"


def test_named_attachment() -> None:
    env = {
        **GRAY,
        "KAFKA_URL": "kafka://default:9092",
        "TOPICFLOW_KAFKA_ATTACHMENT": "HEROKU_KAFKA_GRAY",
    }
    kafka = KafkaEnv.read(env)
    assert kafka.url is not None and kafka.url.bootstrap_servers == "gray1:9096,gray2:9096"
    assert kafka.prefix == "gray-"
    config = StreamsConfig.from_env("x-app", env)
    assert config.application_id == "gray-x-app"
    assert config.client_config["ssl.ca.pem"] == GRAY["HEROKU_KAFKA_GRAY_TRUSTED_CERT"]


def test_named_attachment_without_its_url_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="HEROKU_KAFKA_BLUE_URL is not set"):
        attachment_name({"TOPICFLOW_KAFKA_ATTACHMENT": "HEROKU_KAFKA_BLUE"})


def test_java_example_scheme_with_addon_suffix() -> None:
    env = {"ADDON_SUFFIX": "_GRAY", **GRAY}
    assert attachment_name(env) == "HEROKU_KAFKA_GRAY"
    assert KafkaEnv.read(env).prefix == "gray-"
    with pytest.raises(ConfigError, match="HEROKU_KAFKA_PINK_URL is not set"):
        attachment_name({"ADDON_SUFFIX": "_PINK"})


def test_heroku_kafka_without_suffix() -> None:
    env = {"HEROKU_KAFKA_URL": "kafka://h:9092", "HEROKU_KAFKA_PREFIX": "h."}
    assert attachment_name(env) == "HEROKU_KAFKA"
    assert KafkaEnv.read(env).prefix == "h."


def test_nothing_set_means_the_embedded_broker() -> None:
    assert KafkaEnv.read({}).url is None
    assert StreamsConfig.from_env("x-app", {}).bootstrap_servers is None
