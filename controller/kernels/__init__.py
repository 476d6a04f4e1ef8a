"""The real-time kernels (Cython): estimator, push-off, safety, monitor, thermal model, composed by the tick.

The tables they share are declared in Python: ``faults`` (fault and warning bits, modes, phase
sources) and ``telemetry`` (the telemetry row's columns); ``codegen`` writes their C constants
into ``_tables.pxd`` when the kernels are built.
"""
