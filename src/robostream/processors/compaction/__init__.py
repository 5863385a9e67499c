"""Frame compaction: pure encoders run in a process pool, off the event loop.

``h264`` (RGB segments), ``depth`` (16-bit PNG), ``pointcloud`` (Draco), ``tiers`` (original,
preview, thumbnail), ``bundles`` (hourly tar.gz parts) and ``jobs`` (what one pool task does).
"""
