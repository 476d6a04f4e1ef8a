"""The real-time kernels (Cython): estimator, push-off, safety, monitor, thermal model, composed by the tick; and the fault table they share."""
