"""The S3 lifecycle rules and storage classes made from config, and the tiers' order check."""

from __future__ import annotations

from pathlib import Path

import pytest

from robostream.config import ConfigError, Settings, load_settings
from robostream.sinks.lifecycle import lifecycle_rules, same_rules, storage_class_for

CONFIG = Path(__file__).resolve().parents[3] / "config.yaml"


@pytest.fixture
def defaults() -> Settings:
    return load_settings(CONFIG)


def test_config_yaml_gives_the_seeds_tiers(defaults: Settings) -> None:
    assert lifecycle_rules(defaults) == [
        {"ID": "robostream-raw", "Status": "Enabled", "Filter": {"Prefix": "raw/"},
         "Expiration": {"Days": 365},
         "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"},
                         {"Days": 90, "StorageClass": "GLACIER_IR"}]},
        {"ID": "robostream-processed", "Status": "Enabled", "Filter": {"Prefix": "processed/"},
         "Expiration": {"Days": 30}},
        {"ID": "robostream-incomplete-uploads", "Status": "Enabled", "Filter": {"Prefix": ""},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}},
    ]


def test_without_transitions_the_raw_rule_says_so(defaults: Settings) -> None:
    raw = lifecycle_rules(defaults, transitions=False)[0]
    assert raw == {"ID": "robostream-raw-no-transitions", "Status": "Enabled",
                   "Filter": {"Prefix": "raw/"}, "Expiration": {"Days": 365}}
    no_classes = defaults.model_copy(update={"retention": defaults.retention.model_copy(
        update={"warm_storage_class": None, "cold_storage_class": None})})
    assert lifecycle_rules(no_classes)[0]["ID"] == "robostream-raw"  # nothing was refused
    assert "Transitions" not in lifecycle_rules(no_classes)[0]


def test_rules_compare_by_meaning_not_layout(defaults: Settings) -> None:
    ours = lifecycle_rules(defaults)
    # as a store answers: other key order, a legacy top-level Prefix, rules in another order
    answered = [{"Status": "Enabled", "ID": "robostream-processed", "Prefix": "processed/",
                 "Expiration": {"Days": 30}}, ours[2], ours[0]]
    assert same_rules(answered, ours)
    longer = [dict(answered[0], Expiration={"Days": 31}), ours[2], ours[0]]
    assert not same_rules(longer, ours)


@pytest.mark.parametrize(("key", "cls"), [
    ("raw/r1/s1/compressed/front/rgb/original/1700000000000000.mp4", "GLACIER_IR"),
    ("raw/r1/s1/compressed/front/depth/original/1700000000000000.png", "GLACIER_IR"),
    ("raw/r1/s1/compressed/lidar/pointcloud/original/1700000000000000.drc", "GLACIER_IR"),
    ("raw/r1/s1/compressed/lidar/pointcloud/1700000000000000.drc", "GLACIER_IR"),  # before original/
    ("raw/r1/s1/compressed/20260101T00_bundle.tar.gz", "GLACIER_IR"),
    ("raw/r1/s1/compressed/20260101T00_bundle.tar.gz.parts/0001-front-rgb", None),
    ("raw/r1/s1/compressed/front/rgb/preview/1700000000000000.mp4", None),
    ("raw/r1/s1/frames/front/1700000000000000_rgb.jpg", None),
    ("raw/r1/s1/frames/lidar/1700000000000000_pointcloud.ply", None),  # the robot's own: raw
    ("processed/r1/s1/thumbnails/front/rgb/1700000000000000.jpg", None),
])
def test_originals_and_bundles_are_written_cold(defaults: Settings, key: str, cls: str | None) -> None:
    assert storage_class_for(key, defaults) == cls


def test_tiers_out_of_order_are_refused() -> None:
    with pytest.raises(ConfigError, match="retention tiers out of order"):
        load_settings(CONFIG, retention={"warm_days": 20})
