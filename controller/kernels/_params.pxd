# The parameter vector's layout on the Cython side: one index constant per registry parameter
# (P_*), N_PARAMS and param_flags(i), generated from controller/params/registry.py at build time
# (controller/params/codegen.py, called by setup.py).  Kernels cimport from here; the include is
# named once, so its inline function is defined once per module.
include "_param_index.pxi"


cdef inline int fill_vector(object params, double* out) except -1:
    """``params.vector()`` (a validated ParamSet's values, registry order) into ``out``
    (N_PARAMS doubles): the thin Python ``configure`` wrappers' one conversion."""
    cdef object v = params.vector()
    cdef int i
    if len(v) != N_PARAMS:
        raise ValueError(f"expected {N_PARAMS} parameter values (registry order), got {len(v)}: "
                         f"the kernels were built from another registry; rebuild them")
    for i in range(N_PARAMS):
        out[i] = v[i]
    return 0


cdef inline int require_configured(bint configured, str kernel) except -1:
    """Python entry points of a kernel refuse to run it before ``configure``: it holds no
    values of its own (every one comes from the registry through configure)."""
    if not configured:
        raise RuntimeError(f"{kernel} is not configured: call configure(params) first "
                           f"(a kernel has no parameter values of its own)")
    return 0
