"""Build the Cython real-time kernels and install the ``ankle`` console script.

Every ``_*.pyx`` under controller/ (in its sub-packages), hal/ and sim/ is one
extension module of the same dotted name.  ``ANKLE_CYTHON_ANNOTATE=1`` writes Cython's HTML
annotation next to each source (yellow lines = Python interaction, which the
tick must not have).

Before ``cythonize``, the Cython constants the kernels need from the Python tables are generated
(:mod:`controller.kernels.codegen`): ``controller/kernels/_tables.pxd`` (faults, modes, telemetry
columns) and ``controller/kernels/_param_index.pxi`` (the parameter registry's indices), each
written only if its text changed, so an unchanged table recompiles nothing.  Only pure-Python
modules are imported for that: nothing compiled exists yet.
"""
import os
import sys
from glob import glob

import numpy
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

PACKAGES_WITH_KERNELS = ("controller", "hal", "sim")
ROOT = os.path.dirname(os.path.abspath(__file__))


def _generate_tables():
    """The kernels' generated constants.  codegen imports only pure-Python tables: nothing is
    compiled yet."""
    sys.path.insert(0, ROOT)
    try:
        from controller.kernels import codegen
    finally:
        sys.path.remove(ROOT)
    codegen.write_all()


def _extensions():
    sources = sorted(p for pkg in PACKAGES_WITH_KERNELS
                     for p in glob(os.path.join(pkg, "**", "_*.pyx"), recursive=True))
    return [
        Extension(
            path[:-4].replace(os.sep, "."),
            [path],
            include_dirs=[numpy.get_include()],
            extra_compile_args=["-O2"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for path in sources
    ]


_generate_tables()

setup(
    name="ankle-controller",
    version="0.1.0",
    description="Controller for a powered ankle-foot prosthesis: Cython real-time core, CAN HAL, simulated plant.",
    packages=find_packages(include=["controller*", "hal*", "sim*", "bench*"]),
    package_data={"hal": ["*.dbc", "*.pxd", "data/*.eds"], "controller": ["*/*.pxd"], "sim": ["*.pxd", "data/*.csv", "data/sources/*.csv"]},
    ext_modules=cythonize(
        _extensions(),
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
        annotate=os.environ.get("ANKLE_CYTHON_ANNOTATE") == "1",
    ),
    python_requires=">=3.9",
    install_requires=[
        "numpy>=1.24",
        "python-can>=4.3",
        "pyserial>=3.5",
        "cantools>=39.0",
        "canopen>=2.4",
        "mcap>=1.1",
        "zstandard>=0.21",
        "tomli>=2.0; python_version < '3.11'",
    ],
    extras_require={
        # the live view's tests serve it and read it back with a real WebSocket client
        "test": ["pytest>=7.0", "hypothesis>=6.80", "odrive_can>=2.1", "foxglove-sdk>=0.30", "websockets>=13"],
        "plot": ["matplotlib>=3.6"],
        # the live view in Foxglove (controller/records/live.py); the board runs without it
        "live": ["foxglove-sdk>=0.30"],
    },
    entry_points={"console_scripts": ["ankle=controller.cli:main"]},
    zip_safe=False,
)
