"""Benchmarks: speed, memory and accuracy targets. Each module prints a table and writes
benchmarks/results/<name>.json through benchmarks.common.write_result."""
