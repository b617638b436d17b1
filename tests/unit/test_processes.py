"""Process helpers: signals while stopping."""

from __future__ import annotations


def test_a_stopping_process_ignores_further_stop_signals() -> None:
    """Found in CI: a second signal while asyncio.run() closed the loop printed a traceback."""
    import asyncio
    import signal

    from streamapp.processes import STOP_SIGNALS, ignore_further_stop_signals

    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    async def stopping() -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, lambda: None)
        ignore_further_stop_signals(loop)
        # Nothing left for loop.close() to remove after it has closed its self-pipe.
        for sig in STOP_SIGNALS:
            assert not loop.remove_signal_handler(sig)
            assert signal.getsignal(sig) == signal.SIG_IGN

    try:
        asyncio.run(stopping())
        # A late signal is ignored: no KeyboardInterrupt, no write to a closed wakeup fd.
        signal.raise_signal(signal.SIGINT)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
