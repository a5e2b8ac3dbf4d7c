"""Tele-interpreting: the language catalog and the interpreter providers' settings (pure)."""
