"""Adversarial examples on raw [0, 1] images: FGSM, PGD (L-inf, L2), robustness, adversarial training.

Names are imported on first use: `pixelwise attack` loads this package whenever the command line
starts, and torch should load only when a command needs it.
"""
from importlib import import_module

_EXPORTS = {"attack_loss": "losses", "classification_loss": "losses", "dense_loss": "losses",
            "fgsm": "gradient_attacks", "input_gradient": "gradient_attacks", "pgd": "gradient_attacks",
            "run_attack": "gradient_attacks",
            "robustness_curve": "robustness", "robustness_table": "robustness",
            "smallest_flipping_eps": "flip", "adversarial_batch": "training"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pixelwise.attacks' has no attribute {name!r}")
    return getattr(import_module(f"pixelwise.attacks.{_EXPORTS[name]}"), name)
