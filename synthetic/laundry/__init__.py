"""Laundry List task of Merullo, Eickhoff & Pavlick (2024), "Talking Heads" (arXiv:2406.09519v4), toy scale.

A prompt lists ``n`` items, a separator, all of them but one again in a fresh order, and a query;
the answer is the item that was not repeated. Toy attention-only models learn the task; the analysis
looks for the paper's inhibition channel (a low-rank subspace written by an inhibition head and read
by a mover head's query), checks it by ablation, and edits it.

Modules: :mod:`~.config` (settings and designs), :mod:`~.data` (prompts, a pure function of
``(config, seed)``), :mod:`~.model`, :mod:`~.training`, :mod:`~.analysis`, :mod:`~.intervention`,
:mod:`~.experiment` (one run; the experiment's configs), :mod:`~.summary` and :mod:`~.plots`.
``TASK`` is what ``attnlab reproduce laundry`` runs.
"""

from attnlab.synthetic.base import Task
from attnlab.synthetic.laundry.config import LaundryConfig, item_coded, positional, value_readout
from attnlab.synthetic.laundry.data import Prompts, build_test_set, in_test_partition, sample_prompts
from attnlab.synthetic.laundry.experiment import configs, run
from attnlab.synthetic.laundry.model import LaundryModel, init_model
from attnlab.synthetic.laundry.plots import plot
from attnlab.synthetic.laundry.summary import summarize
from attnlab.synthetic.laundry.training import train_model

TASK = Task(name="laundry", configs=configs, run=run, summarize=summarize, plot=plot, full_seeds=4)

__all__ = [
    "TASK",
    "LaundryConfig",
    "LaundryModel",
    "Prompts",
    "build_test_set",
    "configs",
    "in_test_partition",
    "init_model",
    "item_coded",
    "plot",
    "positional",
    "run",
    "sample_prompts",
    "summarize",
    "train_model",
    "value_readout",
]
