"""Calling robots from the platform side: the request goes to the RPC requests topic, the gateway
delivers it over the robot's WebSocket and writes the answer to the responses topic (see
:mod:`robostream.rpc.caller`, ``docs/rpc.md``). Used by ``robostream rpc call`` and
``POST /v1/robots/{id}/rpc``."""

from robostream.rpc.caller import (
    GRACE_S,
    MAX_PARAMS_BYTES,
    METHOD_PATTERN,
    Outcome,
    RpcCaller,
    RpcCallError,
    RpcErrorBody,
    RpcInputError,
    RpcReply,
    check_request,
)

__all__ = [
    "GRACE_S",
    "MAX_PARAMS_BYTES",
    "METHOD_PATTERN",
    "Outcome",
    "RpcCallError",
    "RpcCaller",
    "RpcErrorBody",
    "RpcInputError",
    "RpcReply",
    "check_request",
]
