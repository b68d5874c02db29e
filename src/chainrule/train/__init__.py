"""The training library: ``nn``, ``optim``, ``fit``/``Trainer``, checkpoints, data sets and the
scikit-learn estimators.

Built on chainrule's public API only (``import chainrule``), so it would work unchanged on
another engine with the same API.
"""
