"""The IVR engine: controls calls on Asterisk over ARI."""
