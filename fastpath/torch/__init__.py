"""Torch fast paths (batched, autograd-capable, CPU and CUDA), one module per family.

Same family names and call signatures as :mod:`attnlab.reference`; inputs are tensors and the output
follows their dtype and device. ``softmax``, ``laser``, ``differential``, ``hamming`` and ``mla`` run on
``scaled_dot_product_attention``; ``linear`` is the chunked causal form; ``tensor`` and ``simplicial``
stream query blocks; ``interaction`` is batched GEMMs.
"""
