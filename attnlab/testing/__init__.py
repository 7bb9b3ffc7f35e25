"""The one validation harness: the tolerance rule, forward and gradient parity, and ``attnlab check``.

Used by the lab's own tests, by the benchmark gate and by :func:`check_kernel` for a user's kernel.
"""

from attnlab.testing.check import Adapter, KernelCase, KernelReport, check_kernel, kernel_cases
from attnlab.testing.parity import Implementation, assert_forward, assert_gradients, check_path, forward, gradients
from attnlab.testing.rule import Error, Judgement, assert_close, assert_within_rule, error, judge

__all__ = [
    "Adapter",
    "Error",
    "Implementation",
    "Judgement",
    "KernelCase",
    "KernelReport",
    "assert_close",
    "assert_forward",
    "assert_gradients",
    "assert_within_rule",
    "check_kernel",
    "check_path",
    "error",
    "forward",
    "gradients",
    "judge",
    "kernel_cases",
]
