"""Command-line layers: each module holds one command's argparse definition and turns its flags into one typed call
(``optimize_z2`` -> :func:`navintent.steering.optimize`, ``train`` -> :func:`navintent.training.train`)."""
