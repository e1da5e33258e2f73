"""Provider emulators: real HTTP servers speaking provider protocols, with scriptable behaviour.

:mod:`.behaviour` is the protocol-independent engine (configuration, randomness, ledger of
emulated transactions); each protocol module (:mod:`.jsonhttp`, ...) maps it onto the wire;
:mod:`.server` runs an emulator app on loopback; :mod:`.cli` holds the ``paymux emulator`` commands.
"""
