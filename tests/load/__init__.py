"""The load test the project ships: ``make load`` (see run.py)."""
