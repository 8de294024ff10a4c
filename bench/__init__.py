"""`make bench`: overhead, throughput and footprint of ringwatch, beside bcc's own tools.

Run as `python -m bench [--quick]` from the repository root; see bench/README.md.
"""
