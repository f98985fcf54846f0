"""Realtime delivery: events stored per recipient, published after commit, pushed by websocket."""
