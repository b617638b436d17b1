"""Carts and items over gRPC: the server, its servicers, authentication, storage and the outbox relay."""
