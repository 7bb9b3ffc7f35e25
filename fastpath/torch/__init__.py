"""Torch fast paths of the nine core attention forms (batched, autograd-capable, CPU and CUDA).

One module per family, same names as :mod:`attnlab.reference`: ``softmax`` and ``laser``,
``differential``, ``hamming``, ``mla`` run on ``scaled_dot_product_attention``; ``linear`` is the
chunked causal form; ``tensor`` and ``simplicial`` stream query blocks; ``interaction`` is batched
GEMMs. :mod:`attnlab.fastpath.torch.composed` holds the same math written plainly (the float64
autograd reference and the "composed torch" benchmark peer). Signatures match the references;
inputs are tensors and the output follows their dtype and device.
"""

from attnlab.fastpath.torch.differential import differential_attention
from attnlab.fastpath.torch.hamming import hamming_attention, hamming_scores, sign_code
from attnlab.fastpath.torch.interaction import factorized_interaction
from attnlab.fastpath.torch.laser import laser_attention
from attnlab.fastpath.torch.linear import linear_attention
from attnlab.fastpath.torch.mla import TorchMLAWeights, mla_attention
from attnlab.fastpath.torch.simplicial import simplicial_attention
from attnlab.fastpath.torch.softmax import softmax_attention
from attnlab.fastpath.torch.tensor import tensor_attention

__all__ = [
    "TorchMLAWeights",
    "differential_attention",
    "factorized_interaction",
    "hamming_attention",
    "hamming_scores",
    "laser_attention",
    "linear_attention",
    "mla_attention",
    "sign_code",
    "simplicial_attention",
    "softmax_attention",
    "tensor_attention",
]
