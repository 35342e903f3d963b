"""Package data: the shipped sim navigator (``sim_navigator.pt``) and its record; see :mod:`navintent.shipped`."""
