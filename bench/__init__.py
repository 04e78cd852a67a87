"""`make bench`: throughput and latency of the identity server, measured in one run.

Run it with `python -m bench` (`--quick` for a short smoke run); see
`bench/README.md` for what each row means.
"""
