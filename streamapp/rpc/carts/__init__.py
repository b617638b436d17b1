"""Carts over gRPC: the server, its servicers, authentication, conversion and tracing."""
