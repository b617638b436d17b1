"""Every access to private Faust / aiokafka internals, each next to the upstream behaviour it works around.

Outside this module, private access is a lint error (ruff SLF001); the contract
test `tests/unit/test_compat.py` imports the installed Faust and aiokafka and
fails when one of the names used here is renamed or changes its signature.
"""

from __future__ import annotations
