"""gRPC doors, one package per pipeline that has one (the gRPC side of `web/`)."""
