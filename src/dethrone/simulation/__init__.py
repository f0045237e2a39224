"""Simulated users: traffic to the gateway, labels sent back, and the end-to-end demo."""
