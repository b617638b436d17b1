"""Assistance requests from the chat bot: the routing table and the service that keeps it current."""
