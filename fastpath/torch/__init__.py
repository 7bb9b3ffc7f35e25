"""Torch fast paths (batched, autograd-capable, CPU and CUDA), one module per family.

Same family names and call signatures as :mod:`attnlab.reference`; inputs are tensors and the output
follows their dtype and device. The softmax-type paths run on ``scaled_dot_product_attention``; the
form declarations (:mod:`attnlab.forms`) name each path and say what it implements.
"""
