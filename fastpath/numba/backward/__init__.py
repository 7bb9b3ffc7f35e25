"""Numba backward (vector-Jacobian product) kernels of the attention fast paths, one module per family.

Each ``<family>_vjp(grad_out, *args, **kwargs)`` returns the gradients of the form's array arguments, in
order, each shaped and typed like that argument; the form declarations name them.
"""
