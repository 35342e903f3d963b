"""navintent: steer and stress-test NoMaD diffusion navigation policies with a two-stage latent intent.

``import navintent`` stays light (no torch import); :func:`load_policy` imports the checkpoint code on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_policy(path: Any, config: Any = None, trust_checkpoint: bool = False, **kwargs: Any) -> Any:
    """Load a policy from a native checkpoint, a nomad.pth (+ ``config``) or, with ``trust_checkpoint``, a packaged
    file. See :func:`navintent.checkpoint.load_policy`."""
    from navintent.checkpoint import load_policy as _load_policy

    return _load_policy(path, config=config, trust_checkpoint=trust_checkpoint, **kwargs)


__all__ = ["__version__", "load_policy"]
