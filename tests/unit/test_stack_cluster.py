"""The local stack as a 3-node Kafka cluster: names, ports, folders and start order (no servers)."""

from __future__ import annotations

from pathlib import Path

from robostream.config import KafkaSettings, Settings, StackSettings
from robostream.stack import Stack
from robostream.stack.stack import _waves


def cluster(tmp_path: Path) -> Stack:
    return Stack(Settings(kafka=KafkaSettings(bootstrap="127.0.0.1:21092"),
                          stack=StackSettings(kafka_brokers=3, kafka_controller_port=21093,
                                              state_dir=tmp_path)))


def test_three_nodes_each_with_its_own_name_ports_folder_and_log(tmp_path: Path) -> None:
    stack = cluster(tmp_path)
    nodes = stack.named(["kafka"])
    assert [n.name for n in nodes] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [n.ports() for n in nodes] == [[21092, 21093], [21094, 21095], [21096, 21097]]
    assert len({n.data_dir for n in nodes}) == 3 and len({stack.log_path(n.name) for n in nodes}) == 3
    assert stack.settings.kafka.bootstrap == "127.0.0.1:21092,127.0.0.1:21094,127.0.0.1:21096"


def test_every_node_votes_in_one_quorum_and_replicates_like_the_compose_cluster(tmp_path: Path) -> None:
    props = [n.properties() for n in cluster(tmp_path).named(["kafka"])]  # type: ignore[attr-defined]
    assert {p["controller.quorum.voters"] for p in props} == {
        "1@127.0.0.1:21093,2@127.0.0.1:21095,3@127.0.0.1:21097"}
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert [p["broker.rack"] for p in props] == ["rack-a", "rack-b", "rack-c"]
    for p in props:
        assert (p["default.replication.factor"], p["min.insync.replicas"]) == ("3", "2")
        assert p["unclean.leader.election.enable"] == "false"
        assert "controller.quorum.bootstrap.servers" not in p  # static voters, formatted alike


def test_services_start_after_every_kafka_node(tmp_path: Path) -> None:
    stack = cluster(tmp_path)
    waves = _waves(stack.named(["kafka", "s3", "schema-registry", "gateway"]), running=[])
    assert [[s.name for s in wave] for wave in waves] == [
        ["kafka-1", "kafka-2", "kafka-3", "s3"], ["schema-registry"], ["gateway"]]
    # a node still down holds the services back
    assert [s.name for s in _waves(stack.named(["kafka-3", "schema-registry"]),
                                   running=stack.named(["kafka-1", "kafka-2"]))[0]] == ["kafka-3"]


def test_one_broker_stays_the_default(tmp_path: Path) -> None:
    stack = Stack(Settings(stack=StackSettings(state_dir=tmp_path)))
    assert [s.name for s in stack.named(["kafka"])] == ["kafka"]
    props = stack.server("kafka").properties()  # type: ignore[attr-defined]
    assert props["offsets.topic.replication.factor"] == "1" and "broker.rack" not in props
