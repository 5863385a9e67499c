"""Which store errors pause a connector (retriable) and which send a record to the DLQ."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError
from pymongo.errors import AutoReconnect, DocumentTooLarge, OperationFailure, ServerSelectionTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from robostream.sinks import mongo, redis, s3


def client_error(status: int, code: str) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": code},
                     "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "PutObject")


def test_mongodb() -> None:
    assert mongo.is_transient(ServerSelectionTimeoutError("down"))
    assert mongo.is_transient(AutoReconnect("connection reset"))
    assert mongo.is_transient(OperationFailure("shutting down", code=91))
    assert mongo.is_transient(OperationFailure("interrupted at shutdown", code=11600))
    assert not mongo.is_transient(OperationFailure("bad update", code=9))
    assert not mongo.is_transient(DocumentTooLarge("16 MB"))


def test_s3() -> None:
    assert s3.is_retriable(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert s3.is_retriable(client_error(503, "SlowDown"))
    assert s3.is_retriable(client_error(500, "InternalError"))
    assert s3.is_retriable(client_error(403, "AccessDenied"))  # credentials: fix config, don't DLQ
    assert s3.is_retriable(client_error(404, "NoSuchBucket"))
    assert not s3.is_retriable(client_error(400, "InvalidArgument"))
    assert not s3.is_retriable(client_error(400, "EntityTooLarge"))


def test_redis() -> None:
    assert redis.is_retriable(RedisConnectionError("refused"))
    assert redis.is_retriable(ResponseError("LOADING Redis is loading the dataset in memory"))
    assert redis.is_retriable(ResponseError("OOM command not allowed when used memory > 'maxmemory'"))
    assert not redis.is_retriable(ResponseError("WRONGTYPE Operation against a key holding the wrong kind"))
