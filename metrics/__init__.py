"""Prometheus metrics of the hotline: what the on-call supervisors watch.

Labels are bounded (queue, language, call type, state, reason, stage): never a
caller number, a channel id or anything else that grows with the calls.
"""
