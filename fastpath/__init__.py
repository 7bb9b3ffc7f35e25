"""Fast paths of the reference operators, validated against them.

* :mod:`attnlab.fastpath.numba` — Numba CPU kernels (NumPy arrays in and out);
* :mod:`attnlab.fastpath.torch` — torch implementations (tensors in and out, autograd, CPU and CUDA)
  plus the composed-torch math used as the float64 gradient reference;
* :mod:`attnlab.fastpath.bench` — the ``attnlab bench`` verb: timings against SDPA, composed torch and
  the NumPy reference, behind a correctness gate.

Each package registers its paths on :mod:`attnlab.registry`; parity is held to the tolerance rule
``err(fast, ref64) <= k·err(same math at the fast dtype, ref64) + floor``.
"""
