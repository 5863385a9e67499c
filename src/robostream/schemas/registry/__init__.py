"""A Confluent-compatible Schema Registry: REST API on aiohttp, schemas in a compacted Kafka topic.

Works unmodified with confluent-kafka's ``SchemaRegistryClient``, ``AvroSerializer`` and
``AvroDeserializer``. Run it with ``robostream schema-registry`` or, in-process::

    async with SchemaRegistryServer(settings, port=0) as registry:
        client = SchemaRegistryClient({"url": registry.url})
"""

from robostream.schemas.registry.compatibility import (
    CompatibilityLevel,
    Incompatibility,
    Verdict,
    check_compatibility,
)
from robostream.schemas.registry.errors import RegistryError
from robostream.schemas.registry.server import SchemaRegistryServer, serve_registry

__all__ = [
    "CompatibilityLevel",
    "Incompatibility",
    "RegistryError",
    "SchemaRegistryServer",
    "Verdict",
    "check_compatibility",
    "serve_registry",
]
