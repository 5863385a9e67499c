"""The bucket's S3 lifecycle rules and the storage class objects are written with, from config.

The tiers (docs/retention.md): ``raw/`` objects stay standard for ``mongo.hot_retention_days``,
move to ``retention.warm_storage_class``, then to ``retention.cold_storage_class`` after
``retention.warm_days`` and expire after ``retention.cold_days``; ``processed/`` objects
(thumbnails) expire after ``retention.processed_days``; incomplete multipart uploads are aborted.

The S3 sink writes the rules at start-up (:func:`apply_lifecycle`): only when the bucket's
``robostream-*`` rules differ, keeping other rules. A store that refuses transitions (SeaweedFS:
``NotImplemented``; MinIO without a remote tier of that name) gets the rules without them,
under :data:`NO_TRANSITIONS_ID`, which later start-ups take as the rules already in place.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from robostream.config import Settings

log = logging.getLogger(__name__)

RULE_PREFIX = "robostream-"
RAW_ID = "robostream-raw"
#: The raw rule as written to a store that refused its transitions.
NO_TRANSITIONS_ID = "robostream-raw-no-transitions"
PROCESSED_ID = "robostream-processed"
UPLOADS_ID = "robostream-incomplete-uploads"
ABORT_UPLOADS_AFTER_DAYS = 7
#: Answers of a store that does not do transitions (or not to that class).
_REFUSED = frozenset({"NotImplemented", "InvalidStorageClass", "InvalidArgument", "InvalidRequest",
                      "XMinioAdminTierNotFound"})


def lifecycle_rules(settings: Settings, *, transitions: bool = True) -> list[dict[str, Any]]:
    """The ``robostream-*`` rules of the bucket (``transitions=False``: what a store without
    storage tiers is given)."""
    tiers = settings.retention
    steps = [(settings.mongo.hot_retention_days, tiers.warm_storage_class),
             (tiers.warm_days, tiers.cold_storage_class)]
    moves = [{"Days": days, "StorageClass": cls} for days, cls in steps if cls]
    raw: dict[str, Any] = {"ID": RAW_ID, "Status": "Enabled", "Filter": {"Prefix": "raw/"},
                           "Expiration": {"Days": tiers.cold_days}}
    if moves:
        if transitions:
            raw["Transitions"] = moves
        else:
            raw["ID"] = NO_TRANSITIONS_ID
    return [
        raw,
        {"ID": PROCESSED_ID, "Status": "Enabled", "Filter": {"Prefix": "processed/"},
         "Expiration": {"Days": tiers.processed_days}},
        {"ID": UPLOADS_ID, "Status": "Enabled", "Filter": {"Prefix": ""},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_UPLOADS_AFTER_DAYS}},
    ]


def _canonical(rule: dict[str, Any]) -> tuple[Any, ...]:
    """What a rule says, whatever extra fields or layout the store answers with."""
    prefix = rule.get("Filter", {}).get("Prefix", rule.get("Prefix", ""))
    moves = sorted((int(t["Days"]), str(t["StorageClass"])) for t in rule.get("Transitions", []))
    expiry = rule.get("Expiration", {}).get("Days")
    abort = rule.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation")
    return rule.get("ID"), rule.get("Status"), prefix, tuple(moves), expiry, abort


def same_rules(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    return sorted(map(_canonical, a), key=repr) == sorted(map(_canonical, b), key=repr)


def current_rules(client: Any, bucket: str) -> list[dict[str, Any]]:
    """The bucket's lifecycle rules (empty when it has none)."""
    try:
        rules: list[dict[str, Any]] = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchLifecycleConfiguration":
            return []
        raise
    return rules


def apply_lifecycle(client: Any, settings: Settings) -> str:
    """Write the lifecycle rules if the bucket's differ; returns ``unchanged``, ``written`` or
    ``written without transitions`` (the store refused them)."""
    bucket = settings.s3.bucket
    rules = current_rules(client, bucket)
    others = [r for r in rules if not str(r.get("ID", "")).startswith(RULE_PREFIX)]
    ours = [r for r in rules if r not in others]
    full, reduced = lifecycle_rules(settings), lifecycle_rules(settings, transitions=False)
    if same_rules(ours, full) or same_rules(ours, reduced):
        return "unchanged"
    try:
        _put(client, bucket, others + full)
        return "written"
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if full == reduced or code not in _REFUSED:
            raise
        log.warning("s3://%s refused lifecycle transitions (%s: %s): expiry rules only; the storage "
                    "classes are not changed over time (docs/retention.md)", bucket, code, exc)
    _put(client, bucket, others + reduced)
    return "written without transitions"


def _put(client: Any, bucket: str, rules: list[dict[str, Any]]) -> None:
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})


def storage_class_for(key: str, settings: Settings) -> str | None:
    """The class an object is written with: the cold one for the processors' original tier (point
    clouds included) and the hourly bundles (the seed keeps originals cold); ``None`` (standard)
    for the rest."""
    parts = key.split("/")
    if len(parts) < 5 or parts[0] != "raw" or parts[3] != "compressed":
        return None
    if "original" in parts[4:-1] or key.endswith("_bundle.tar.gz") or _tierless_cloud(parts):
        return settings.retention.cold_storage_class
    return None


def _tierless_cloud(parts: list[str]) -> bool:
    """A point cloud keyed ``compressed/{camera}/pointcloud/{µs}.drc``: the layout before the
    ``original/`` folder (a processor of an older version, records still on the derived topic)."""
    return len(parts) == 7 and parts[5] == "pointcloud" and parts[6].endswith(".drc")
