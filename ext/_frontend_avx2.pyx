# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: extra_compile_args = -O3 -ffast-math
"""AVX2 + FMA build of ``ext._frontend`` (same code, ``_frontend_core.pxi``): twice the SIMD width.

Compiled for x86-64 with AVX2 and FMA (GCC's target pragma below; elsewhere it is
the portable build again). Import it only where the CPU has both:
``edge.modem.frontend.front_kernels`` checks first, since the whole module, import
code included, may use those instructions.

Streaming receiver front end in one nogil call per block: the detector's whole sync path.

Decimating mixer -> sub-block DFT on the sync grid -> window energies -> preamble sync
score over the Doppler/clock offsets -> local peak picking, sample by sample with
preallocated rings, so no Python runs per sub-block and nothing is recomputed across
blocks. ``ext.modem_reference.SyncFrontEnd`` is the NumPy twin (the same algorithm,
vectorised over each block with the ``ext.modem_reference`` kernels); the tests hold
the two to the same candidates.

Built with -ffast-math so GCC may reassociate sums into SIMD lanes; the one place that
must see NaN/Inf (input cleaning) tests the float's bits, which fast-math leaves alone.
"""

cdef extern from *:
    """
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
    #pragma GCC target("avx2,fma")
    #endif
    """

include "_frontend_core.pxi"
