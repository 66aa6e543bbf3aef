"""Command line: ``bn-lab COMMAND`` or ``python -m bn_core COMMAND``.

Commands: train, compare (``cli.train``); study (``cli.study``); submit, runs (``cli.runs``);
datasets (``cli.datasets``); replay (``cli.replay``); settings (``cli.settings``: every
``BN_LAB_*`` variable, checked before any other command runs). Flags, defaults, limits and
help texts are generated from ``TrainConfig``. TensorFlow is imported only once a run really
starts, so ``--help`` and bad flags answer instantly; what its C++ side prints at start-up goes
to ``$BN_LAB_HOME/logs/cli.log`` (``cli.common.native_output_to_log``), not to the terminal.

Exit codes: 0 completed; 1 dataset missing/corrupt or run failed; 2 bad flags or values (a bad
``BN_LAB_*`` setting too); 3 diverged; 130 cancelled (Ctrl-C: the first one stops cleanly,
keeping what was measured).
"""

from bn_core.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
