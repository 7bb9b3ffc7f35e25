"""Fast paths of the reference operators, validated against them.

* :mod:`attnlab.fastpath.numba` — Numba CPU kernels (NumPy arrays in and out);
* :mod:`attnlab.fastpath.torch` — torch implementations (tensors in and out, autograd, CPU and CUDA).

The form declarations (:mod:`attnlab.forms`) name each fast path as ``"module:function"`` with its
dtypes, devices, VJP and tolerance; the harness (:mod:`attnlab.testing`) holds each one to the rule
``err(fast, ref64) <= k·err(oracle at the fast dtype, ref64) + floor``.
"""
