"""Benchmarks of issue 8: stop accuracy against vehicle API calls (fleet), controller and webhook throughput."""
