"""Foxglove: ``robostream foxglove`` serves live robots over the Foxglove WebSocket protocol
(:mod:`robostream.foxglove.service`: :class:`FoxgloveBridge`, :func:`serve_foxglove`), and
:mod:`robostream.foxglove.messages` defines the topics and messages it shares with the MCAP export.

Nothing is imported here, so the export (replay) imports the messages without the live service's
dependencies (the API's live hub, Redis, S3).
"""
