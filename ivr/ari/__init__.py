"""Our thin ARI client: typed models and events, REST calls, the event WebSocket.

Written in-house because the public clients hand events to one handler at a
time (a handler waiting for DTMF never sees it) and do not reconnect when the
WebSocket drops.
"""
