"""Adapters: implementations of the ports, and the driving side (HTTP, socket.io)."""
