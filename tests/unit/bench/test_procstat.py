"""The socket-table check the integration tests use to tell processes sharing a port apart."""

from __future__ import annotations

import os
import socket

from bench.procstat import listens_on


def test_listens_on_names_the_process_holding_the_listener() -> None:
    with socket.socket() as listener, socket.socket() as bound_only:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        bound_only.bind(("127.0.0.1", 0))  # bound, never listening
        assert listens_on(os.getpid(), port)
        assert not listens_on(os.getpid(), bound_only.getsockname()[1])
        assert not listens_on(os.getppid(), port)  # another process: not this socket
    assert not listens_on(os.getpid(), port)  # closed
    assert not listens_on(2**22 + 12345, port)  # no such process
