"""Builds the one compiled module of the package, `cv_reader._kernels` (everything else is in pyproject.toml).

The extension is optional: without a C compiler the install still succeeds and `cv_reader` runs its numpy versions
of the same loops (the same results, slower on short clips; see Compressed_Video_Reader/README.md).
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildKernels(build_ext):
    """Adds the flags the kernels' exactness relies on: no fused multiply-add (the float32 results must equal the
    numpy versions bit for bit, and GCC contracts a*b+c by default on targets with FMA, e.g. aarch64)."""

    def build_extensions(self) -> None:
        if self.compiler.compiler_type != "msvc":
            for extension in self.extensions:
                extension.extra_compile_args += ["-O3", "-ffp-contract=off", "-fno-fast-math"]
        else:
            for extension in self.extensions:
                extension.extra_compile_args += ["/O2", "/fp:precise"]
        super().build_extensions()


setup(
    ext_modules=[
        Extension("cv_reader._kernels", ["Compressed_Video_Reader/cv_reader/_kernels.c"], optional=True),
    ],
    cmdclass={"build_ext": BuildKernels},
)
