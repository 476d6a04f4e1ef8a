"""The powered ankle's controller.

- ``kernels``: the real-time core (Cython): estimator, push-off, safety, composed by the tick.
- ``runtime``: the loop that runs the tick, in a process of its own on the board.
- ``params``: the parameter registry and the parameter file.
- ``console``: the prosthetists' serial console, its access control and audit log.
- ``records``: session logs, offline replay, the session report.
- ``symmetry``: gait symmetry of both legs, stride by stride.
- ``board`` runs it all on the device; ``cli`` is the ``ankle`` command, ``config`` its run file.
"""
