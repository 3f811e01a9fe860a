"""Thin HTTP and websocket endpoints: parse, call the hub, render."""
