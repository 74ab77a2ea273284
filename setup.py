"""Build the Cython kernels in ext/ (everything else is declared in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

# One Extension per .pyx in ext/ (add a kernel by adding a file); -O3 because these are
# the hot loops of the decoder.
EXT_MODULES = [
    Extension(
        f"ext.{name}",
        [f"ext/{name}.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    )
    for name in sorted(p.stem for p in Path(__file__).parent.joinpath("ext").glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        EXT_MODULES,
        compiler_directives={"language_level": "3"},
    ),
)
